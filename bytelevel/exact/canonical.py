"""`TokenByteState`: the exact state over the canonical covers, what `TokenByteModel.start` returns.

On top of `base.CoverState` it keeps the trunk short (a *cut* that follows the
last stable position, with the tokens before it moved into the model's KV
cache), opens groups lazily (candidates unchecked until a result needs them)
and samples by certified bounds, checking candidates only until the byte is
certain. The package docstring has the definitions and the reasons.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..pretok import letter_cut, stable_cuts
from ..trie import TokenReach
from ..utf8 import incomplete_tail, utf8_allowed
from .base import Core, CoverState, LazyMass
from .bounds import DistributionBounds, decide, pick
from .cover import Group, ends_with_at, last_token_candidates, needs_probes, prefix_spelling


class TokenByteState(CoverState):
    """The canonical covers of one prefix, after the last stable cut (an `ExactByteState`)."""

    def __init__(self, core: Core, prefix: bytes, context: Sequence[int] = (),
                 end_ids: Sequence[int] | None = None, raw: bool = False):
        super().__init__(core, prefix, context, end_ids, raw)
        self._fresh: dict[bytes, list[tuple[int, ...]]] = {}  # bytes after the cut -> `_fresh_seqs`
        self._reach = TokenReach(core.trie) if core.letter_cuts else None
        self._scanned = (-1, -1)  # (cut, complete bytes) of the last stable-cut search
        self._move_cut()
        self.groups = self._initial_groups()

    # -- the definition: canonical covers -----------------------------------------------------------
    def _spellings(self) -> list[tuple[int, ...]]:
        return [self._canonical()]

    def _pending_ends(self) -> list[tuple[int, ...]]:
        return [self._canonical()] if self.eos_ids else []

    def _initial_groups(self) -> list[Group]:
        """Groups for a fresh prefix: candidates starting before the end, checked now."""
        x = self.data[self.cut :]
        core = self.core
        cands = [(j, v) for j, ids in last_token_candidates(core.trie, core.lengths, x) for v in ids.tolist()]
        encs = self._encode_all([x[:j] + core.vocab.pieces[v] for j, v in cands])
        found: dict[tuple[tuple[int, ...], int], list[int]] = {}
        for (j, v), enc in zip(cands, encs):
            if ends_with_at(enc, v, j, core.lengths):
                found.setdefault((enc[:-1], j), []).append(v)
        groups = [Group(seq, j, np.array(ids, dtype=np.int64), np.ones(len(ids), dtype=np.int8))
                  for (seq, j), ids in found.items()]
        self._ensure([g.seq for g in groups])
        return groups

    def _fresh_seqs(self, pos: int) -> list[tuple[int, ...]]:
        """Sequences that spell exactly the first `pos` bytes and may precede a new token.

        The canonical one, plus those a continuation's first character makes the
        pre-tokenizer choose (whitespace look-ahead, contractions, a character
        cut mid-way): found by encoding the prefix followed by one token per
        distinct first character. After a plain character nothing can change.
        """
        x = self.data[self.cut : self.cut + pos]
        if x in self._fresh:
            return self._fresh[x]
        seqs = {self._canonical(pos)} if pos else {()}
        if pos and needs_probes(x):
            for probe in self._probes_after(x):
                seq = prefix_spelling(self._encode(x + probe), self.core.lengths, pos)
                if seq is not None:
                    seqs.add(seq)
        self._fresh[x] = sorted(seqs)
        return self._fresh[x]

    def _probes_after(self, x: bytes) -> list[bytes]:
        """The pre-tokenizer probes that can give different answers after `x`.

        After a character cut mid-way, every probe whose first byte cannot
        continue it leaves those bytes invalid: `canonical_encode` then spells
        them one byte token each and encodes the text before them alone,
        whatever the probe is, so one such probe stands for all of them.
        """
        if not incomplete_tail(x):
            return self.core.probes
        allowed = utf8_allowed(x)
        going = [p for p in self.core.probes if allowed[p[0]]]
        other = next((p for p in self.core.probes if not allowed[p[0]]), None)
        return going + ([other] if other is not None else [])

    def _open_fresh(self, exact: bool) -> None:
        """Open the groups whose last token starts at the current position.

        `exact` checks every token after every sequence now (the full, slow
        answer `logprobs()` needs); otherwise the candidates wait unchecked.
        """
        if self._fresh_done and not exact:
            return
        core, n = self.core, self.n
        self.groups = [g for g in self.groups if g.start < n]
        ids = core.byte_ids
        if exact:
            x = self.data[self.cut :]
            found: dict[tuple[int, ...], list[int]] = {}
            encs = self._encode_all([x + core.vocab.pieces[v] for v in ids.tolist()])
            for v, enc in zip(ids.tolist(), encs):
                if ends_with_at(enc, v, n, core.lengths):
                    found.setdefault(enc[:-1], []).append(v)
            self.groups += [Group(s, n, np.array(v, dtype=np.int64), np.ones(len(v), dtype=np.int8))
                            for s, v in found.items()]
        else:
            self.groups += [Group(s, n, ids, np.full(len(ids), -1, dtype=np.int8)) for s in self._fresh_seqs(n)]
        self._fresh_done = True

    # -- lazy answers -------------------------------------------------------------------------------
    def bounds(self) -> DistributionBounds:
        """Certified bounds on `logprobs()` that tighten on demand.

        `logprobs()` decides the canonicity of every candidate token (tens of
        thousands after a fresh cover); the bounds start from the candidates the
        model has scored and check the heaviest first, each `refine()` a growing
        chunk, so a caller that needs the distribution only to some precision
        (ensembles' normalisers, see ensemble.py) pays for that precision only.
        """
        if self._dist is not None:
            return DistributionBounds.exact(self.logprobs())
        return DistributionBounds(LazyMass(self), self.data)

    def sample(self, u: float, temperature: float = 1.0, top_p: float = 1.0,
               allowed: np.ndarray | None = None) -> int:
        """The next byte (or `EOT`) for a uniform draw `u`, exactly as from `logprobs()`.

        Inversion over bytes 0..256 with the distribution raised to 1/temperature;
        canonicity is checked from the heaviest candidate down until the byte that
        `u` selects cannot change. temperature 0 is argmax. top_p < 1 checks all.
        `allowed` (257 booleans) conditions on a set of slots (e.g. valid UTF-8).
        """
        if top_p < 1.0:
            return pick(self.logprobs(), u, temperature, top_p, allowed)
        lazy = LazyMass(self)
        while True:
            lo, hi = lazy.bounds(allowed)
            byte = decide(lo, hi, u, temperature)
            if byte is not None:
                return byte
            lazy.refine(self.data)

    def prefetch(self, path: bytes, *more: bytes) -> None:
        """Evaluate, in one model call, the sequences needed here and if the next bytes are `path`
        (or any of `more`: an ensemble passes each member's likeliest continuation to all)."""
        saved = self.data
        tails = [g.seq for g in self.groups]
        try:
            for p in (path, *more):
                for j in range(len(p) + 1):
                    self.data = saved + p[:j]
                    tails += self._fresh_seqs(self.n)
        finally:
            self.data = saved
        self._ensure(tails)

    def ready(self) -> bool:
        """Whether every sequence needed here is evaluated (no model call to answer)."""
        return all(g.seq in self._ctx for g in self.groups) and all(
            s in self._ctx for s in self._fresh_seqs(self.n))

    def likeliest_path(self) -> bytes:
        """The remaining bytes of the heaviest candidate cover whose model outputs are at hand.

        Groups opening here are included only when their sequences are already
        evaluated, so that asking costs no model call.
        """
        if not self._fresh_done and all(s in self._ctx for s in self._fresh_seqs(self.n)):
            self._open_fresh(exact=False)
        n = self.n
        best, best_lp = b"", -math.inf
        for g in self.groups:
            if not len(g.ids) or g.seq not in self._ctx:
                continue
            lp = self._ctx[g.seq][torch.from_numpy(g.ids)]
            k = int(torch.argmax(lp))
            score = float(lp[k]) + self._logp(g.seq)
            if score > best_lp:
                best_lp, best = score, self.core.vocab.pieces[int(g.ids[k])][n - g.start :]
        return best

    # -- the cut -------------------------------------------------------------------------------------
    def _after_advance(self) -> None:
        self._move_cut()

    def _move_cut(self) -> None:
        """Advance the cut to the last stable or sealed letter cut, moving the shared tokens into the trunk.

        Stable cuts sit at pre-token starts (`pretok.stable_cuts`). Inside one
        long pre-token, a run of letters, the cut follows the last position that
        no token can lie across (`trie.TokenReach`, fed each byte once) and that
        `pretok.letter_cut` accepts: the proof that this is exact is in its
        docstring. So the bytes after the cut stay few however long the run.
        """
        step = self._cut_step()
        if not step:
            return
        delta = self._encode(self.data[self.cut : self.cut + step])
        k = len(delta)
        # every canonical cover starts with delta (that is what a stable cut is): drop the rest
        groups = [Group(g.seq[k:], g.start - step, g.ids, g.valid) for g in self.groups if g.seq[:k] == delta]
        last = None
        if not all(delta[:i] in self._ctx for i in range(k + 1)):
            base, last = self.core.lm.extend(self.trunk, delta)  # one forward, not one row per prefix
            self._ctx = {t: lp for t, lp in self._ctx.items() if t[:k] == delta and len(t) > k}
            self._seq = {t: lp for t, lp in self._seq.items() if t[:k] == delta and len(t) > k}
            self._seq[delta] = base
        else:
            base = self._logp(delta)
        self._ctx = {t[k:]: lp for t, lp in self._ctx.items() if t[:k] == delta}
        self._seq = {t[k:]: lp - base for t, lp in self._seq.items() if t[:k] == delta}
        self._seq[()] = 0.0
        if last is not None:
            self._ctx[()] = last
        # what is known of the bytes after the old cut carries over, for the byte strings a cut is
        # proven for: those that agree with the data so far (its prefixes past the cut and its extensions)
        tail = self.data[self.cut :]

        def agrees(x: bytes, extends: bool = False) -> bool:
            return len(x) >= step and (x[: len(tail)] == tail or not extends and tail[: len(x)] == x)

        self._canon = {x[step:]: t[k:] for x, t in self._canon.items() if agrees(x) and t[:k] == delta}
        # probes read past x, so only an x that extends the data keeps its fresh sequences
        self._fresh = {x[step:]: [t[k:] for t in seqs] for x, seqs in self._fresh.items()
                       if agrees(x, extends=True) and all(t[:k] == delta for t in seqs)}
        self.groups = groups
        self.trunk = self.trunk + list(delta)
        self.trunk_logp += base
        self.cut += step
        if self._reach is not None:
            self._reach.rebase(self.cut)

    def _cut_step(self) -> int:
        """How far the cut may move: to the last stable cut, or the last sealed letter cut after it."""
        whole = len(self.data) - incomplete_tail(self.data)
        step = 0
        if self._scanned != (self.cut, whole):  # bytes inside a character change no cut
            cuts = stable_cuts(self.core.vocab, self.data[self.cut :])
            step = cuts[-1] if cuts else 0
            self._scanned = (self.cut, whole)
        if self._reach is not None:
            self._reach.rebase(self.cut + step)
            if whole > self._reach.end:
                self._reach.push(self.data[self._reach.end : whole])
            inside = [c for c in self._reach.sealed() if letter_cut(self.data, c)]
            if inside:
                step = inside[-1] - self.cut
        return step
