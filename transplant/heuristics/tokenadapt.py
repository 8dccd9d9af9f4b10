"""TokenAdapt's heuristics (Sharthak et al., arXiv 2505.09738), as the paper and its code define them.

- **local**: the new token's bytes re-encoded by the old tokenizer give
  subtokens `o_i`. Each gets `(softmax_i(cos(aux(s), aux(o_i)) / T) + len(o_i)/len(s)) / 2`,
  and the weights are a softmax of that over T. Lengths are in bytes (the
  reference counts characters of decoded strings; the same for ASCII, and
  defined for tokens that cut a character).
- **global**: the k nearest old tokens to `aux(s)` by cosine (FAISS inner
  product over normalised vectors), neighbours below `threshold` dropped,
  weights softmax(sim / T) (one neighbour: weight 1).
- **hybrid**: `(1 - w) * local + w * global`; where one side has nothing, the
  other alone. Defaults T = 0.3, k = 3, w = 0.3, threshold = 0.0 (the
  reference's).
"""
from __future__ import annotations

import torch

from ..ann import InnerProductIndex
from .common import CHUNK, Estimate, Source, masked_softmax, padded


def local(src: Source, pieces: list[bytes], temperature: float = 0.3) -> Estimate:
    subs = [src.decompose(p) for p in pieces]
    ids, mask = padded(subs)
    aux_old = src.aux_old()
    full = torch.from_numpy(src.aux_new(pieces))  # normalised: cosine = dot
    # (n, m, a) at once is n x m x 384 floats: gigabytes for a 50k target over a small base vocabulary
    cos = torch.cat([torch.einsum("na,nma->nm", full[lo : lo + CHUNK], torch.from_numpy(aux_old[ids[lo : lo + CHUNK]]))
                     for lo in range(0, len(pieces), CHUNK)]) if len(pieces) else torch.zeros(0, ids.shape[1])
    mask_t = torch.from_numpy(mask)
    w_sim = masked_softmax(cos / temperature, mask_t)
    sub_len = torch.tensor([[len(src.old.pieces[int(i)] or b"") for i in row] for row in ids], dtype=torch.float32)
    full_len = torch.tensor([max(len(p), 1) for p in pieces], dtype=torch.float32)
    combined = (w_sim + sub_len / full_len[:, None]) / 2
    weights = masked_softmax(combined / (temperature + 1e-9), mask_t)
    rows_in, rows_out = src.mix(ids, weights)
    ok = mask.any(1)
    return Estimate(rows_in, rows_out, ok, ["local" if k else "" for k in ok])


def global_(src: Source, pieces: list[bytes], temperature: float = 0.3, top_k: int = 3,
            threshold: float = 0.0) -> Estimate:
    anchors = src.anchor_ids
    index = InnerProductIndex(src.aux_old()[anchors])
    sims, found = index.search(src.aux_new(pieces), top_k)
    ids = anchors[found]
    mask = torch.from_numpy((found >= 0) & (sims >= threshold))
    weights = masked_softmax(torch.from_numpy(sims).float() / temperature, mask)
    rows_in, rows_out = src.mix(ids, weights)
    ok = mask.any(1).numpy()
    return Estimate(rows_in, rows_out, ok, ["global" if k else "" for k in ok])


def hybrid(src: Source, pieces: list[bytes], temperature: float = 0.3, top_k: int = 3, weight: float = 0.3,
           threshold: float = 0.0) -> Estimate:
    loc = local(src, pieces, temperature)
    glo = global_(src, pieces, temperature, top_k, threshold)
    both = torch.from_numpy(loc.ok & glo.ok)[:, None]
    only_glo = torch.from_numpy(~loc.ok & glo.ok)[:, None]

    def blend(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(both, (1 - weight) * a + weight * b, torch.where(only_glo, b, a))

    rows_out = None if loc.rows_out is None else blend(loc.rows_out, glo.rows_out)
    source = ["hybrid" if a and b else "local" if a else "global" if b else "" for a, b in zip(loc.ok, glo.ok)]
    return Estimate(blend(loc.rows_in, glo.rows_in), rows_out, loc.ok | glo.ok, source)
