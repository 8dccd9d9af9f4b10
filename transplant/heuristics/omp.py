"""Orthogonal matching pursuit over shared anchors (Goddard & Fernandes Neto, arXiv 2506.06607).

A new token's vector in some *reference space* (a donor model's embedding
row, or the auxiliary embedder's vector of its string) is written as a
k-sparse combination of the reference vectors of the tokens both
vocabularies share (the anchors); the same anchors and coefficients applied
to the base model's rows of those tokens give the new row. k = 64 is the
paper's (and mergekit tokensurgeon's) default.

OMP (Pati et al. 1993): start from residual r = y; k times, pick the anchor
with the largest |<r, a>| / ||a|| (the normalised correlation: the textbook
rule; mergekit ranks by the raw |<r, a>|, which favours long rows), then
least squares of y on every picked anchor, r = y - that fit. The least
squares are kept as an incremental QR (Gram-Schmidt, orthogonalised twice so
float32 stays orthogonal at k = 64). A row that is already reproduced
(||r|| <= tol * ||y||) stops picking: its remaining slots get coefficient 0,
so a target that *is* a sparse combination of anchors is recovered exactly.

With k = 1 this is nearest-anchor copying: the anchor of largest |cosine|,
its base row scaled by the projection coefficient <y, a> / ||a||^2 (exactly
a copy when y equals the anchor).

Many targets are solved together (batches of `batch` rows, torch; CUDA when
asked), deterministically (ties go to the lower anchor index). Does not
handle: the donor side (which tokens, which rows); `transplant()` does.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .common import Estimate, Source

DEFAULT_K = 64  # the paper's
TOL = 1e-6  # relative residual at which a target counts as reproduced


def device_for(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when present, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def batch_omp(targets: torch.Tensor, anchors: torch.Tensor, k: int = DEFAULT_K, batch: int = 512,
              device: str | torch.device = "cpu", progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """k-sparse codes of `targets` (B, D) over the rows of `anchors` (N, D).

    Returns (indices (B, k') long, coefficients (B, k')) with k' = min(k, N), on
    the CPU, so that `targets[b] ~= coeffs[b] @ anchors[indices[b]]`. float64
    inputs are solved in float64, anything else in float32. Example: anchors
    [[1, 0], [0, 1], [1, 1]], target [2, 3], k = 2 -> anchors {2, 1} (or
    {2, 0}), coefficients that reproduce [2, 3] exactly.
    """
    if targets.ndim != 2 or anchors.ndim != 2 or targets.shape[1] != anchors.shape[1]:
        raise ValueError(f"batch_omp: targets {tuple(targets.shape)} and anchors {tuple(anchors.shape)} must be "
                         "(B, D) and (N, D) with the same D")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    dev = device_for(device)
    dtype = torch.float64 if targets.dtype == torch.float64 and anchors.dtype == torch.float64 else torch.float32
    n = anchors.shape[0]
    k = min(k, n)
    if n == 0 or targets.shape[0] == 0:
        return torch.zeros(targets.shape[0], k, dtype=torch.long), torch.zeros(targets.shape[0], k, dtype=dtype)
    atoms = anchors.to(dev, dtype)
    norms = atoms.norm(dim=1)
    unit = atoms / norms.clamp_min(torch.finfo(dtype).tiny)[:, None]  # (N, D) selection by normalised correlation
    dead = norms == 0  # a zero row can never help
    out_idx, out_coef = [], []
    steps = range(0, targets.shape[0], batch)
    for lo in tqdm(steps, desc="omp", unit="batch", disable=not progress or len(steps) < 2):
        idx, coef = _omp_block(targets[lo : lo + batch].to(dev, dtype), atoms, unit, dead, k)
        out_idx.append(idx.cpu())
        out_coef.append(coef.cpu())
    return torch.cat(out_idx), torch.cat(out_coef)


def _omp_block(y: torch.Tensor, atoms: torch.Tensor, unit: torch.Tensor, dead: torch.Tensor,
               k: int) -> tuple[torch.Tensor, torch.Tensor]:
    b, d = y.shape
    rows = torch.arange(b, device=y.device)
    q = y.new_zeros(b, k, d)  # orthonormal basis of the picked anchors, row t = step t (contiguous slices)
    r = y.new_zeros(b, k, k)  # the picked anchors A_S = R^T Q (R upper triangular)
    picked = torch.zeros(b, k, dtype=torch.long, device=y.device)
    residual = y.clone()
    stop = TOL * y.norm(dim=1)
    active = y.norm(dim=1) > 0
    tiny = torch.finfo(y.dtype).tiny
    for t in range(k):
        # a picked anchor is orthogonal to the residual (score ~0), so it needs no mask: it is never the
        # maximum while the residual is above `stop`
        score = (residual @ unit.T).abs_()  # (B, N)
        if dead.any():
            score.masked_fill_(dead, -1.0)
        new = score.argmax(1)  # first maximum: deterministic
        active &= score[rows, new] > 0
        picked[:, t] = torch.where(active, new, picked[:, 0]) if t else new
        atom = atoms[new]  # (B, D)
        proj = y.new_zeros(b, t)
        ortho = atom
        if t:
            basis = q[:, :t]  # (B, t, D)
            for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
                p = torch.bmm(basis, ortho[:, :, None])  # (B, t, 1)
                ortho = ortho - torch.bmm(basis.transpose(1, 2), p)[:, :, 0]
                proj = proj + p[:, :, 0]
        size = ortho.norm(dim=1)
        active &= size > 1e-7 * atom.norm(dim=1)  # an anchor in the span adds nothing: stop there
        keep = active[:, None]
        q[:, t] = torch.where(keep, ortho / size.clamp_min(tiny)[:, None], 0.0)
        r[:, :t, t] = torch.where(keep, proj, 0.0)
        r[:, t, t] = torch.where(active, size, 1.0)  # a stopped slot solves to coefficient 0
        residual = residual - q[:, t] * (q[:, t] * residual).sum(1, keepdim=True)
        active &= residual.norm(dim=1) > stop
    qty = torch.bmm(q, y[:, :, None])  # (B, k, 1)
    coef = torch.linalg.solve_triangular(r, qty, upper=True)[:, :, 0]
    return picked, coef


def apply_codes(indices: torch.Tensor, coeffs: torch.Tensor, rows: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The same sparse codes in another space: (B, k) codes over `rows` (N, d) -> (B, d)."""
    out = [torch.einsum("bk,bkd->bd", coeffs[lo : lo + chunk].to(rows.dtype), rows[indices[lo : lo + chunk]])
           for lo in range(0, len(indices), chunk)]
    return torch.cat(out) if out else rows.new_zeros(0, rows.shape[1])


def omp_transfer(targets: torch.Tensor, anchors: torch.Tensor, base_rows: list[torch.Tensor | None],
                 k: int = DEFAULT_K, device: str | torch.device = "cpu",
                 progress: bool = True) -> list[torch.Tensor | None]:
    """Codes of `targets` over `anchors` (reference space) applied to each of `base_rows` (anchors' base rows)."""
    idx, coef = batch_omp(targets, anchors, k, device=device, progress=progress)
    return [None if rows is None else apply_codes(idx, coef, rows) for rows in base_rows]


def omp_aux(src: Source, pieces: list[bytes], shared_old_ids: np.ndarray, k: int = 16,
            device: str | torch.device = "cpu") -> Estimate:
    """Donor-free OMP: the auxiliary embedder (MiniLM) is the reference space.

    Each new token's aux vector is coded over the aux vectors of the shared
    tokens; the codes are applied to the base rows of those tokens.
    """
    n = len(pieces)
    if not len(shared_old_ids) or not n:
        return Estimate(torch.zeros(n, src.rows_in.shape[1]), None, np.zeros(n, dtype=bool), [""] * n)
    ids = torch.from_numpy(shared_old_ids)
    anchors = torch.from_numpy(src.aux_old()[shared_old_ids])
    targets = torch.from_numpy(src.aux_new(pieces))
    rows_in, rows_out = omp_transfer(targets, anchors, [src.rows_in[ids], None if src.rows_out is None else
                                                        src.rows_out[ids]], k, device=device)
    ok = targets.norm(dim=1).numpy() > 0
    return Estimate(rows_in, rows_out, ok, ["omp-aux" if good else "" for good in ok])


def omp_donor(src: Source, donor_in: torch.Tensor, donor_out: torch.Tensor | None, target_ids: np.ndarray,
              anchor_donor_ids: np.ndarray, anchor_old_ids: np.ndarray, k: int = DEFAULT_K,
              device: str | torch.device = "cpu") -> Estimate:
    """OMP with a donor: codes of the donor's rows `target_ids` over its rows `anchor_donor_ids`,
    applied to the base rows `anchor_old_ids` (the same tokens, in the same order).

    Input embeddings and LM head are coded separately when both models have an
    untied head; a tied side gives one set of codes for both (the paper's
    tokensurgeon does the two matrices separately).
    """
    n = len(target_ids)
    if not len(anchor_old_ids) or not n:
        return Estimate(torch.zeros(n, src.rows_in.shape[1]), None, np.zeros(n, dtype=bool), [""] * n)
    t_ids, a_ids = torch.from_numpy(target_ids), torch.from_numpy(anchor_donor_ids)
    base = torch.from_numpy(anchor_old_ids)
    base_out = None if src.rows_out is None else src.rows_out[base]
    if base_out is not None and donor_out is not None:  # both untied: each matrix its own codes
        (rows_in,) = omp_transfer(donor_in[t_ids], donor_in[a_ids], [src.rows_in[base]], k, device=device)
        (rows_out,) = omp_transfer(donor_out[t_ids], donor_out[a_ids], [base_out], k, device=device)
    else:
        rows_in, rows_out = omp_transfer(donor_in[t_ids], donor_in[a_ids], [src.rows_in[base], base_out], k,
                                         device=device)
    return Estimate(rows_in, rows_out, np.ones(n, dtype=bool), ["omp"] * n)
