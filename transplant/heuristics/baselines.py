"""The baselines users compare a transplant with.

- **mean** (FVT, Gee et al. 2022): the mean of the old rows of the token's
  old-tokenizer pieces.
- **random**: a normal draw with the old matrix's per-dimension mean and std
  (what TokenAdapt and FOCUS fall back to).
- **focus** (Dobler & de Melo 2023): sparsemax over the similarities to the
  tokens both vocabularies share, weights applied to those tokens' old rows.
  FOCUS measures similarity in a fastText space trained on target-language
  text; here the auxiliary embedder (MiniLM) stands in for it, so no
  training corpus is needed: a deliberate difference.
"""
from __future__ import annotations

import numpy as np
import torch

from .common import Estimate, Source, padded


def mean(src: Source, pieces: list[bytes]) -> Estimate:
    ids, mask = padded([src.decompose(p) for p in pieces])
    m = torch.from_numpy(mask).float()
    weights = m / m.sum(1, keepdim=True).clamp_min(1.0)
    rows_in, rows_out = src.mix(ids, weights)
    ok = mask.any(1)
    return Estimate(rows_in, rows_out, ok, ["mean" if k else "" for k in ok])


def random(src: Source, pieces: list[bytes], seed: int = 0) -> Estimate:
    gen = torch.Generator().manual_seed(seed)

    def draw(rows: torch.Tensor) -> torch.Tensor:
        mu, sd = rows.mean(0), rows.std(0)
        return mu + sd * torch.randn(len(pieces), rows.shape[1], generator=gen)

    rows_out = None if src.rows_out is None else draw(src.rows_out)
    return Estimate(draw(src.rows_in), rows_out, np.ones(len(pieces), dtype=bool), ["random"] * len(pieces))


def sparsemax(scores: torch.Tensor) -> torch.Tensor:
    """Sparsemax along the last axis (Martins & Astudillo 2016): a softmax with exact zeros."""
    z, _ = torch.sort(scores, dim=-1, descending=True)
    k = torch.arange(1, scores.shape[-1] + 1, dtype=scores.dtype)
    cum = z.cumsum(-1)
    support = 1 + k * z > cum
    k_max = support.sum(-1, keepdim=True)
    tau = (cum.gather(-1, k_max - 1) - 1) / k_max.to(scores.dtype)
    return torch.clamp(scores - tau, min=0.0)


def focus(src: Source, pieces: list[bytes], shared_old_ids: np.ndarray, chunk: int = 1024) -> Estimate:
    if not len(shared_old_ids):
        return Estimate(torch.zeros(len(pieces), src.rows_in.shape[1]), None, np.zeros(len(pieces), dtype=bool),
                        [""] * len(pieces))
    anchors = torch.from_numpy(src.aux_old()[shared_old_ids])
    queries = torch.from_numpy(src.aux_new(pieces))
    rows_in, rows_out = [], []
    for lo in range(0, len(pieces), chunk):
        weights = sparsemax(queries[lo : lo + chunk] @ anchors.T)
        rows_in.append(weights @ src.rows_in[torch.from_numpy(shared_old_ids)])
        if src.rows_out is not None:
            rows_out.append(weights @ src.rows_out[torch.from_numpy(shared_old_ids)])
    ok = np.ones(len(pieces), dtype=bool)
    return Estimate(torch.cat(rows_in), torch.cat(rows_out) if rows_out else None, ok, ["focus"] * len(pieces))
