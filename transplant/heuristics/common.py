"""What every initialisation heuristic reads, and what it returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.decompose import Decomposer

from ..auxiliary import Embedder, token_text


CHUNK = 4096  # new tokens per step of the (n, pieces, dim) computations


@dataclass
class Source:
    """The old model's side: its vocabulary, its embedding rows, and the auxiliary space."""

    old: ByteVocab
    rows_in: torch.Tensor  # (V_old, d) input embeddings, float32
    rows_out: torch.Tensor | None  # (V_old, d) output rows when untied; None when tied
    aux: Embedder | None
    _aux_old: np.ndarray | None = field(default=None, repr=False)
    _decomposer: Decomposer | None = field(default=None, repr=False)

    @property
    def anchor_ids(self) -> np.ndarray:
        """Old ids that stand for bytes and have a row: the candidates every method may draw on."""
        n = min(len(self.old.pieces), self.rows_in.shape[0])
        return np.array([i for i in range(n) if self.old.pieces[i]], dtype=np.int64)

    def aux_old(self) -> np.ndarray:
        """Auxiliary embeddings of every old token (rows of zeros for specials), computed once."""
        if self._aux_old is None:
            if self.aux is None:
                raise ValueError("this method needs an auxiliary embedder (aux_embedder=)")
            ids = self.anchor_ids
            vectors = np.asarray(self.aux([token_text(self.old.pieces[i]) for i in ids]), dtype=np.float32)
            table = np.zeros((self.rows_in.shape[0], vectors.shape[1]), dtype=np.float32)
            table[ids] = vectors
            self._aux_old = table
        return self._aux_old

    def aux_new(self, pieces: list[bytes]) -> np.ndarray:
        if self.aux is None:
            raise ValueError("this method needs an auxiliary embedder (aux_embedder=)")
        return np.asarray(self.aux([token_text(p) for p in pieces]), dtype=np.float32)

    def decompose(self, piece: bytes) -> list[int]:
        """The old tokenizer's ids for a new token's bytes (see `tokenshift.bytelevel.decompose`)."""
        if self._decomposer is None:
            self._decomposer = Decomposer(self.old, self.rows_in.shape[0])
        return self._decomposer(piece)

    def mix(self, ids: np.ndarray, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weighted sums of old rows: ids (n, m) with weights (n, m) -> (n, d) input (and output) rows."""
        index = torch.from_numpy(ids)

        def weighted(rows: torch.Tensor) -> torch.Tensor:  # in chunks: (n, m, d) at once can be gigabytes
            return torch.cat([torch.einsum("nm,nmd->nd", weights[lo : lo + CHUNK], rows[index[lo : lo + CHUNK]])
                              for lo in range(0, len(ids), CHUNK)]) if len(ids) else rows.new_zeros(0, rows.shape[1])

        return weighted(self.rows_in), None if self.rows_out is None else weighted(self.rows_out)


@dataclass
class Estimate:
    """Rows for new tokens; `ok[i]` False where the method had nothing to go on (caller falls back)."""

    rows_in: torch.Tensor
    rows_out: torch.Tensor | None
    ok: np.ndarray
    source: list[str]  # per token: which heuristic produced it ("local", "global", "hybrid", ...)


def padded(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged id lists as an (n, m) array plus a validity mask (empty lists give an all-False row)."""
    width = max([len(x) for x in lists] + [1])
    ids = np.zeros((len(lists), width), dtype=np.int64)
    mask = np.zeros((len(lists), width), dtype=bool)
    for r, x in enumerate(lists):
        ids[r, : len(x)] = x
        mask[r, : len(x)] = True
    return ids, mask


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the True entries of each row (rows with none give zeros)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(out, nan=0.0)
