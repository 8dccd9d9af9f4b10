"""Certified bounds on a next-byte distribution, and decisions that need only the bounds.

The exact states know the weight of every candidate cover, but whether a
candidate is canonical costs a tokenizer call, so they start from bounds:
checked-canonical mass counts in both, unchecked mass in the upper bound only.
`decide` returns the slot that inverse-CDF sampling picks for *every* weight
vector inside the bounds, or None while the bounds still allow two answers:
then the caller checks more candidates. Because a decision is only returned
when it is certain, it equals `pick` on the full distribution (the property
test_exact checks with hypothesis); only the cost depends on the bounds.

All arrays have 257 slots (256 bytes, then end of text); no torch in the
maths, apart from `pick`, which reads a log-prob tensor.
"""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from .protocols import EOT


def pick(logprobs: torch.Tensor, u: float, temperature: float = 1.0, top_p: float = 1.0,
          allowed: np.ndarray | None = None) -> int:
    """Inverse-CDF pick over 257 slots after masking, temperature and nucleus filtering.

    `u` in [0, 1) selects the first slot whose cumulative probability exceeds
    `u`; temperature 0 is argmax; `allowed` (257 booleans) conditions on a set
    of slots first.

    >>> lp = torch.log(torch.tensor([0.5, 0.25] + [0.0] * 254 + [0.25]))
    >>> pick(lp, 0.4), pick(lp, 0.6), pick(lp, 0.9), pick(lp, 0.9, temperature=0)
    (0, 1, 256, 0)
    """
    lp = logprobs.double()
    if allowed is not None:
        lp = torch.where(torch.from_numpy(np.asarray(allowed)), lp, torch.tensor(-math.inf, dtype=lp.dtype))
        if not torch.isfinite(lp).any():
            raise ValueError("no allowed byte has positive probability")
    if temperature == 0:
        return int(torch.argmax(lp))
    lp = torch.log_softmax(lp / temperature, 0)
    p = lp.exp()
    if top_p < 1.0:
        order = torch.argsort(p, descending=True)
        cum = torch.cumsum(p[order], 0)
        keep = order[: int(torch.searchsorted(cum, torch.tensor(top_p, dtype=cum.dtype))) + 1]
        mask = torch.zeros_like(p, dtype=torch.bool)
        mask[keep] = True
        p = torch.where(mask, p, torch.zeros_like(p))
        p = p / p.sum()
    cdf = torch.cumsum(p, 0)
    return min(int(torch.searchsorted(cdf, torch.tensor(u * float(cdf[-1]), dtype=cdf.dtype), right=True)), 256)


def decide(lo: np.ndarray, hi: np.ndarray, u: float, temperature: float) -> int | None:
    """The slot inversion picks for every weight vector between `lo` and `hi`, if unique.

    `lo`, `hi`: (257,) unnormalised weights, `lo <= hi`. Inversion of `u` over
    `w ** (1 / temperature)` (normalised) gives the same slot for every
    `lo <= w <= hi`, or None is returned.

    >>> lo, hi = np.zeros(257), np.zeros(257)
    >>> lo[[0, 1]], hi[[0, 1]] = (3.0, 1.0), (3.0, 2.0)
    >>> decide(lo, hi, 0.5, 1.0), decide(lo, hi, 0.7, 1.0), decide(lo, hi, 0.9, 1.0)
    (0, None, 1)
    """
    if temperature == 0:
        best = int(np.argmax(lo))
        others = np.delete(hi, best)
        return best if lo[best] > 0 and lo[best] > others.max(initial=0.0) else None
    if temperature != 1.0:
        scale = max(hi.max(), 1e-300)
        lo, hi = (lo / scale) ** (1.0 / temperature), (hi / scale) ** (1.0 / temperature)
    a_lo, a_hi = np.cumsum(lo), np.cumsum(hi)
    b_lo, b_hi = a_lo[-1] - a_lo, a_hi[-1] - a_hi
    with np.errstate(invalid="ignore", divide="ignore"):
        f_lo = np.where(a_lo > 0, a_lo / (a_lo + b_hi), 0.0)  # smallest possible CDF at each slot
        f_hi = np.where(a_hi > 0, a_hi / (a_hi + b_lo), 0.0)  # largest possible CDF
    k = int(np.searchsorted(f_lo, u, side="right"))  # first slot whose CDF surely exceeds u
    if k >= 257:
        return None
    if k == 0 or f_hi[k - 1] <= u:
        return k if lo[k] > 0 else None
    return None




def slot_bounds(next_byte: np.ndarray, weight: np.ndarray, valid: np.ndarray, end_weight: float,
                pending_weight: float, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(257,) lower and upper bounds on the valid mass of each next slot.

    Candidates (one entry each: the byte they put next, their weight, their
    validity 1/0/-1) count in the lower bound when canonical and in the upper
    bound unless known not to be; `end_weight` is the end-of-text mass;
    `pending_weight` (covers whose weights are not known yet) may fall on any slot.

    >>> lo, hi = slot_bounds(np.array([97, 97, 98]), np.array([1.0, 2.0, 4.0]), np.array([1, -1, 0]), 0.5, 0.0)
    >>> float(lo[97]), float(hi[97]), float(hi[98]), float(lo[256])
    (1.0, 3.0, 0.0, 0.5)
    """
    known, unknown = valid == 1, valid < 0
    lo = np.bincount(next_byte[known], weights=weight[known], minlength=257)[:257].astype(np.float64)
    lo[EOT] = end_weight
    hi = lo + np.bincount(next_byte[unknown], weights=weight[unknown], minlength=257)[:257]
    hi += pending_weight
    if allowed is not None:
        lo, hi = np.where(allowed, lo, 0.0), np.where(allowed, hi, 0.0)
    return lo, hi


class SlotMass(Protocol):
    """Bounds that a state can tighten (`base.LazyMass`): what `DistributionBounds` wraps."""

    def bounds(self, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...
    def refine(self, data: bytes) -> None: ...
    def decided(self) -> bool: ...


class DistributionBounds:
    """Per-slot bounds `p_lo <= p <= p_hi` on a next-byte distribution (numpy, 257 slots).

    Made by `ExactByteState.bounds()`; `DistributionBounds.exact(logprobs)` wraps a
    known distribution (byte-native models) so that callers treat both alike.
    `refine()` tightens them and returns False once they are exact.
    """

    def __init__(self, lazy: SlotMass | None, data: bytes = b""):
        self._lazy, self._data = lazy, data
        self.p_lo = self.p_hi = np.zeros(257)
        if lazy is not None:
            self._update()

    @classmethod
    def exact(cls, logprobs: torch.Tensor) -> "DistributionBounds":
        out = cls(None)
        out.p_lo = out.p_hi = logprobs.double().exp().numpy()
        return out

    @property
    def is_exact(self) -> bool:
        return self._lazy is None

    @property
    def width(self) -> float:
        """Total width `sum(p_hi - p_lo)`: 0 when exact."""
        return float((self.p_hi - self.p_lo).sum())

    def _update(self) -> None:
        lo, hi = self._lazy.bounds(None)
        self.p_lo, self.p_hi = normalised_bounds(lo, hi, 1.0)
        if self._lazy.decided():
            self._lazy = None  # every candidate decided: the bounds are the distribution
            total = lo.sum()
            self.p_lo = self.p_hi = lo / total

    def refine(self) -> bool:
        """Check more candidates (or evaluate pending sequences); False when already exact."""
        if self._lazy is None:
            return False
        self._lazy.refine(self._data)
        self._update()
        return True


def normalised_bounds(lo: np.ndarray, hi: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on each slot of `w ** (1/T) / sum(w ** (1/T))` for every `lo <= w <= hi`.

    A slot is smallest when it is at its lower bound and every other slot at
    its upper bound, and the mirror for the largest.

    >>> p_lo, p_hi = normalised_bounds(np.array([1.0, 1.0]), np.array([1.0, 3.0]), 1.0)
    >>> np.round(p_lo, 9).tolist(), np.round(p_hi, 9).tolist()
    ([0.25, 0.5], [0.5, 0.75])
    """
    scale = max(float(hi.max()), 1e-300)
    a = 1.0 / temperature
    lo_t, hi_t = (lo / scale) ** a, (hi / scale) ** a
    with np.errstate(invalid="ignore", divide="ignore"):
        p_lo = np.where(lo_t > 0, lo_t / (lo_t + hi_t.sum() - hi_t), 0.0)
        p_hi = np.where(hi_t > 0, hi_t / (hi_t + lo_t.sum() - lo_t), 0.0)
    return p_lo, np.minimum(p_hi, 1.0)
