"""Exact top-k over a base vocabulary plus n-gram rows built from it, without an index over all rows.

An n-gram token whose output row is the mean of its pieces' rows (FVT, how
`ngram_vocabulary` rows are made) scores the mean of its pieces' scores
against any query. So one product over the base rows gives every score: the
n-grams' are means of a few base scores each (a gather, no 576-wide dot
products), and only the rows within rounding of the k-th best are re-scored
exactly against their stored rows. The answer is the exact top-k (ties by
score aside), for a product over 49k rows instead of 1M.

Rows that are not means of their pieces (a hypernetwork's, say) void this:
`PieceSearch` checks at build time and says so (`exact`), and then works as a
heuristic instead: an n-gram never outscores its best piece when it is a
mean, so the candidates are the n-grams holding one of the `seeds` best base
tokens, re-scored exactly.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch


class PieceSearch:
    """Top-k inner-product search over `rows` whose first `n_base` are base tokens and whose others
    are spelled by `pieces[i]` (base ids). Same `search`/`token_bytes` as `AnnVocabulary`."""

    def __init__(self, rows: np.ndarray | torch.Tensor, token_bytes: list[bytes], pieces: Sequence[Sequence[int]],
                 n_base: int, seeds: int = 8, tolerance: float = 1e-4):
        rows = rows.detach().float().cpu().numpy() if isinstance(rows, torch.Tensor) else rows
        self.rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.rows.ndim != 2 or len(self.rows) != len(token_bytes):
            raise ValueError(f"{len(token_bytes)} tokens but rows of shape {self.rows.shape}")
        if not 0 < n_base <= len(self.rows) or len(pieces) != len(self.rows) - n_base:
            raise ValueError(f"need 0 < n_base <= {len(self.rows)} and one piece list per row after the base, "
                             f"got n_base={n_base} and {len(pieces)} piece lists")
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        self.token_bytes, self.n_base, self.seeds = list(token_bytes), n_base, seeds
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        flat = np.fromiter((int(t) for p in pieces for t in p), dtype=np.int64, count=int(lengths.sum()))
        if (lengths == 0).any() or (len(flat) and (flat.min() < 0 or flat.max() >= n_base)):
            raise ValueError("every n-gram row needs one or more pieces, each a base id below n_base")
        owner = np.repeat(np.arange(n_base, len(self.rows)), lengths)
        order = np.argsort(flat, kind="stable")
        self._owners = owner[order]  # n-gram rows, grouped by the base token they contain
        self._starts = np.searchsorted(flat[order], np.arange(n_base + 1))
        self.exact = self._rows_are_piece_means(flat, lengths, tolerance)
        self._base = torch.from_numpy(self.rows[:n_base])
        # the n-grams' scores are a sparse product with the base scores: row i holds 1/len at its pieces
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch calls sparse CSR "beta"
            self._means = torch.sparse_csr_tensor(
                torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)])), torch.from_numpy(flat),
                torch.from_numpy(np.repeat(1.0 / lengths, lengths).astype(np.float32)),
                (len(lengths), n_base))

    def _rows_are_piece_means(self, flat: np.ndarray, lengths: np.ndarray, tolerance: float) -> bool:
        """Whether every n-gram row is the mean of its pieces' rows (to `tolerance` of the row scale)."""
        scale = float(np.abs(self.rows[: self.n_base]).max()) or 1.0
        ends = np.cumsum(lengths)
        for lo in range(0, len(lengths), 65536):  # in blocks: a 1M-row check stays small in memory
            hi = min(len(lengths), lo + 65536)
            first, last = (ends[lo - 1] if lo else 0), ends[hi - 1]
            sums = np.add.reduceat(self.rows[flat[first:last]], ends[lo:hi] - lengths[lo:hi] - first, axis=0)
            means = sums / lengths[lo:hi, None]
            if np.abs(means - self.rows[self.n_base + lo : self.n_base + hi]).max() > tolerance * scale:
                return False
        return True

    def __len__(self) -> int:
        return len(self.token_bytes)

    def search(self, queries: np.ndarray | torch.Tensor, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k), best first; exact when `self.exact` (see the module docstring)."""
        q = queries.detach().float().cpu() if isinstance(queries, torch.Tensor) else torch.from_numpy(
            np.ascontiguousarray(queries, dtype=np.float32))
        q = q.reshape(-1, self.rows.shape[1])
        k = min(k, len(self.rows))
        base = q @ self._base.T  # (m, n_base): the one product over many rows
        if self.exact:
            return self._search_by_means(q, base, k)
        kb = min(k, self.n_base)
        top_base = torch.topk(base, max(kb, min(self.seeds, self.n_base) if not self.exact else kb), dim=1)
        out_scores = np.empty((len(q), k), dtype=np.float32)
        out_ids = np.empty((len(q), k), dtype=np.int64)
        for j in range(len(q)):
            s = base[j].numpy()
            if self.exact:  # every base token scoring >= the k-th best base score, with float slack
                theta = float(top_base.values[j, kb - 1])
                seeds = np.flatnonzero(s >= theta - 1e-5 * abs(theta) - 1e-6)
            else:
                seeds = top_base.indices[j].numpy()
            cand = np.unique(np.concatenate([self._owners[self._starts[t] : self._starts[t + 1]] for t in seeds]))
            ids = np.concatenate([top_base.indices[j, :kb].numpy(), cand])
            scores = np.concatenate([top_base.values[j, :kb].numpy(), self.rows[cand] @ q[j].numpy()])
            best = np.argsort(-scores, kind="stable")[:k]
            out_scores[j, : len(best)], out_ids[j, : len(best)] = scores[best], ids[best]
            if len(best) < k:  # fewer candidates than k: pad as FAISS does
                out_scores[j, len(best) :], out_ids[j, len(best) :] = -np.inf, -1
        return out_scores, out_ids

    def _search_by_means(self, q: torch.Tensor, base: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row's score from the base scores (n-grams: means), then exact re-scoring of the rows
        within float rounding of the k-th best (so near-ties are settled on the stored rows)."""
        approx = torch.cat([base, (self._means @ base.T).T], 1)  # (m, rows): n-grams as means of base scores
        out_scores = np.empty((len(q), k), dtype=np.float32)
        out_ids = np.empty((len(q), k), dtype=np.int64)
        take = min(len(self.rows), max(4 * k, k + 32))
        top = torch.topk(approx, take, dim=1)
        for j in range(len(q)):
            kth = float(top.values[j, k - 1])
            slack = 1e-4 * abs(kth) + 1e-5  # mean-of-scores vs score-of-mean-row: float32 rounding
            cand = top.indices[j][top.values[j] >= kth - slack].numpy()
            if float(top.values[j, -1]) >= kth - slack and take < len(self.rows):  # more rows inside the slack
                cand = torch.nonzero(approx[j] >= kth - slack)[:, 0].numpy()
            scores = self.rows[cand] @ q[j].numpy()
            best = np.argsort(-scores, kind="stable")[:k]
            out_scores[j], out_ids[j] = scores[best], cand[best]
        return out_scores, out_ids
