"""`AllTokenizationsState`: the next-byte distribution summed over *every* tokenization.

Vieira et al.'s definition, where a cover is any token sequence (canonical or
not). It is the reference that `TokenByteModel(..., tokenizations="all")`
returns for tiny vocabularies and the tests compare with brute force: it has
no cut (the trunk is the start token and context only), every candidate is
valid, and it needs a model call for every segmentation of the prefix, a
number that grows exponentially with its length. Sampling reads the full
distribution; speculative steps work as in the canonical state (base.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Core, CoverState
from .bounds import DistributionBounds, pick
from .cover import Group, last_token_candidates, segmentations


class AllTokenizationsState(CoverState):
    """The covers of one prefix under every tokenization (an `ExactByteState`)."""

    def __init__(self, core: Core, prefix: bytes, context: Sequence[int] = (),
                 end_ids: Sequence[int] | None = None, raw: bool = False):
        super().__init__(core, prefix, context, end_ids, raw)
        self.groups = self._initial_groups()

    def _spellings(self) -> list[tuple[int, ...]]:
        return segmentations(self.core.trie, self.data[self.cut :])

    def _pending_ends(self) -> list[tuple[int, ...]]:
        return []

    def _initial_groups(self) -> list[Group]:
        x = self.data[self.cut :]
        core = self.core
        groups = [Group(seq, j, ids, np.ones(len(ids), dtype=np.int8))
                  for j, ids in last_token_candidates(core.trie, core.lengths, x)
                  for seq in segmentations(core.trie, x[:j])]
        self._ensure([g.seq for g in groups])
        return groups

    def _open_fresh(self, exact: bool) -> None:
        if self._fresh_done and not exact:
            return
        n = self.n
        self.groups = [g for g in self.groups if g.start < n]
        ids = self.core.byte_ids
        seqs = segmentations(self.core.trie, self.data[self.cut :]) if n else [()]
        self.groups += [Group(s, n, ids, np.ones(len(ids), dtype=np.int8)) for s in seqs]
        self._fresh_done = True

    def bounds(self) -> DistributionBounds:
        return DistributionBounds.exact(self.logprobs())

    def sample(self, u: float, temperature: float = 1.0, top_p: float = 1.0,
               allowed: np.ndarray | None = None) -> int:
        return pick(self.logprobs(), u, temperature, top_p, allowed)

    def prefetch(self, path: bytes, *more: bytes) -> None:
        """Nothing to batch: every segmentation is evaluated as it opens."""

    def ready(self) -> bool:
        return all(g.seq in self._ctx for g in self.groups)

    def likeliest_path(self) -> bytes:
        return b""
