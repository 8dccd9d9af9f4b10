"""What every exact state shares: cached model outputs, the groups of covers, and the
distribution, prefix mass, end mass and speculative step computed from them.

`CoverState` leaves three things to its subclasses, which are the two
definitions of the package docstring: which groups open at a position
(`_initial_groups`, `_open_fresh`), which sequences spell the bytes after the
cut exactly (`_spellings`), and which of those must be evaluated before the
end-of-text mass is known (`_pending_ends`). `canonical.TokenByteState` sums
over canonical covers and moves a cut; `reference.AllTokenizationsState` sums
over every tokenization, for tiny vocabularies.

`LazyMass` is the lazy view of a state's distribution that sampling and
`bounds()` tighten on demand (bounds.py has the maths).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..pretok import canonical_encode, encode_many
from ..trie import TokenTrie
from ..utf8 import incomplete_tail
from ..vocab import ByteVocab
from .bounds import decide, normalised_bounds, slot_bounds
from .cover import Group, Members, advance_groups, draft_laws
from .protocols import EOT, TokenTreeScorer


@dataclass
class Core:
    """Shared, state-independent tables for one (model, tokenizer) pair."""

    vocab: ByteVocab
    lm: TokenTreeScorer
    trie: TokenTrie
    table: np.ndarray  # (V, max_len + 1) uint16 token bytes, 256 past the end; specials all 256
    lengths: np.ndarray  # (V,) byte length of each token, 0 for specials
    byte_ids: np.ndarray  # ids that stand for bytes
    probes: list[bytes]  # one token's bytes per distinct first character (pre-tokenizer probes)
    start_id: int
    eos_ids: list[int]
    letter_cuts: bool = False  # cuts inside runs of letters are exact for this tokenizer (pretok.letter_cut)


class CoverState:
    """The covers of one prefix (as groups), the trunk they share, cached model outputs."""

    def __init__(self, core: Core, prefix: bytes, context: Sequence[int] = (),
                 end_ids: Sequence[int] | None = None, raw: bool = False):
        self.core = core
        self.data = (b"" if raw else core.vocab.prefix_bytes) + prefix  # what the model reads
        self.eos_ids = list(core.eos_ids if end_ids is None else end_ids)
        self.cut = 0
        self.trunk = [core.start_id, *context]
        self.trunk_logp = 0.0  # log P(trunk[1:] | start token)
        self._ctx: dict[tuple[int, ...], torch.Tensor] = {}  # tail -> next-token log-probs
        self._seq: dict[tuple[int, ...], float] = {(): 0.0}  # tail -> log P(tail | trunk)
        self._canon: dict[bytes, tuple[int, ...]] = {}  # bytes after the cut -> their canonical tail
        self._dist: torch.Tensor | None = None
        self.invalid_mass = 0.0
        self.groups: list[Group] = []
        self._fresh_done = False  # the groups opened at the current position are complete

    # -- what the definitions decide -------------------------------------------------------------
    def _initial_groups(self) -> list[Group]:
        raise NotImplementedError

    def _open_fresh(self, exact: bool) -> None:
        """Open the groups whose last token starts at the current position (`exact`: checked now)."""
        raise NotImplementedError

    def _spellings(self) -> list[tuple[int, ...]]:
        """The sequences whose bytes are exactly the bytes after the cut."""
        raise NotImplementedError

    def _pending_ends(self) -> list[tuple[int, ...]]:
        """Sequences to evaluate before `LazyMass` may count the end-of-text mass."""
        raise NotImplementedError

    def _after_advance(self) -> None:
        """Hook after a byte is read (the canonical state moves its cut)."""

    # -- small helpers --------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Bytes after the cut."""
        return len(self.data) - self.cut

    def _encode(self, data: bytes) -> tuple[int, ...]:
        return tuple(canonical_encode(self.core.vocab, data))

    def _encode_all(self, datas: list[bytes]) -> list[tuple[int, ...]]:
        """`_encode` on many strings: complete UTF-8 goes through the tokenizer's batch call."""
        whole = [i for i, d in enumerate(datas) if not incomplete_tail(d)]
        out: list[tuple[int, ...] | None] = [None] * len(datas)
        for i, enc in zip(whole, encode_many(self.core.vocab, [datas[i] for i in whole])):
            out[i] = tuple(enc)
        return [o if o is not None else self._encode(d) for o, d in zip(out, datas)]

    def _canonical(self, pos: int | None = None) -> tuple[int, ...]:
        x = self.data[self.cut :] if pos is None else self.data[self.cut : self.cut + pos]
        if x not in self._canon:
            self._canon[x] = self._encode(x)
        return self._canon[x]

    def _ensure(self, tails: Sequence[tuple[int, ...]]) -> None:
        """Make next-token log-probs available after each tail and after each of its prefixes."""
        need = sorted({t[:i] for t in tails for i in range(len(t) + 1)} - self._ctx.keys(), key=len)
        if not need:
            return
        leaves = [t for t in need if not any(len(o) > len(t) and o[: len(t)] == t for o in need)]
        got = self.core.lm.logprobs_tree(self.trunk, leaves)
        for tail in need:
            self._ctx[tail] = got[tail]
        for tail, lp in got.items():  # ancestors come for free
            self._ctx.setdefault(tail, lp)

    def _logp(self, tail: tuple[int, ...]) -> float:
        if tail not in self._seq:
            self._ensure([tail[:-1]])  # the parent's outputs give this one's probability
            self._seq[tail] = self._logp(tail[:-1]) + float(self._ctx[tail[:-1]][tail[-1]])
        return self._seq[tail]

    # -- validity ------------------------------------------------------------------------------------
    def _check(self, group: Group, where: np.ndarray) -> None:
        """Decide canonicity of `group.ids[where]` with the tokenizer."""
        x = self.data[self.cut : self.cut + group.start]
        pieces = self.core.vocab.pieces
        ks = where.tolist()
        encs = self._encode_all([x + pieces[int(group.ids[k])] for k in ks])
        for k, enc in zip(ks, encs):
            group.valid[k] = enc == group.seq + (int(group.ids[k]),)

    def _members(self, lazy: bool = False) -> Members:
        """The candidates of every group, flattened.

        `lazy` leaves out the groups whose sequence the model has not evaluated
        yet (see `_pending`); otherwise they are evaluated first.
        """
        if not lazy:
            self._ensure([g.seq for g in self.groups])
        gi, ki, logm, nxt, val = [], [], [], [], []
        n = self.n
        for g_index, g in enumerate(self.groups):
            if g.seq not in self._ctx:
                continue
            base = self._logp(g.seq)
            lp = self._ctx[g.seq][torch.from_numpy(g.ids)].numpy() + base
            gi.append(np.full(len(g.ids), g_index))
            ki.append(np.arange(len(g.ids)))
            logm.append(lp)
            nxt.append(self.core.table[g.ids, n - g.start].astype(np.int64))
            val.append(g.valid)
        if not gi:
            return Members(*(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.float64, np.int64, np.int8)))
        return Members(np.concatenate(gi), np.concatenate(ki), np.concatenate(logm), np.concatenate(nxt),
                       np.concatenate(val))

    def _pending(self) -> list[tuple[int, ...]]:
        """Sequences of open groups (or the end of text) not evaluated by the model yet."""
        seqs = {g.seq for g in self.groups if g.seq not in self._ctx}
        seqs.update(s for s in self._pending_ends() if s not in self._ctx)
        return sorted(seqs)

    # -- masses and the distribution ---------------------------------------------------------------
    def log_end_mass(self) -> float:
        """log P(s) P(EOS | s) summed over the spellings `s` of the bytes after the cut (relative to the trunk)."""
        if not self.eos_ids:
            return -math.inf
        ends = self._spellings()
        self._ensure(ends)
        eos = torch.tensor(self.eos_ids)
        return float(torch.logsumexp(torch.tensor(
            [float(torch.logsumexp(self._ctx[c][eos], 0)) + self._logp(c) for c in ends], dtype=torch.float64), 0))

    def logprobs(self) -> torch.Tensor:
        """(257,) log-probs of the next byte (0-255) or end of text (256); logsumexp == 0."""
        if self._dist is None:
            self._open_fresh(exact=True)
            for g in self.groups:
                unknown = np.flatnonzero(g.valid < 0)
                if len(unknown):
                    self._check(g, unknown)
            m = self._members()
            logm, nxt, val = m.logmass, m.next_byte, m.valid
            ref = max([float(logm.max()) if len(logm) else -math.inf, self.log_end_mass()])
            mass = np.zeros(257)
            np.add.at(mass, nxt[val == 1], np.exp(logm[val == 1] - ref))
            mass[EOT] = math.exp(self.log_end_mass() - ref)
            total = mass.sum()
            if total <= 0:
                raise ValueError(
                    f"the prefix {self.data[-20:]!r} has probability 0 under this model and tokenizer "
                    "(no canonical token sequence covers it)"
                )
            p_x = math.exp(self.log_prefix_mass() - ref)
            self.invalid_mass = max(0.0, 1.0 - total / p_x) if p_x > 0 else 0.0
            self._dist = torch.log(torch.from_numpy(mass / total))
        return self._dist.clone()

    def log_prefix_mass(self) -> float:
        """log P(x | trunk): the summed probability of the covers of the bytes after the cut.

        `state.trunk_logp + state.log_prefix_mass()` is log P(prefix) under the
        package's definitions; only the candidates still alive are checked.
        """
        n = self.n
        if not n:
            return 0.0
        exact = self._spellings()
        self._ensure([g.seq for g in self.groups if g.start < n])
        terms = [self._logp(seq) for seq in exact]
        for g in self.groups:
            if g.start >= n:
                continue
            unknown = np.flatnonzero(g.valid < 0)
            if len(unknown):
                self._check(g, unknown)
            ok = g.ids[g.valid == 1]
            if len(ok):
                lp = self._ctx[g.seq][torch.from_numpy(ok)] + self._logp(g.seq)
                terms.append(float(torch.logsumexp(lp, 0)))
        return float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))

    # -- speculative sampling --------------------------------------------------------------------------
    def propose(self, u: float, temperature: float = 1.0) -> tuple[bytes, list[np.ndarray]]:
        """A draft for speculative sampling: the rest of one candidate cover, and its law.

        The candidate is drawn by inversion of `u` over the covers' weights raised
        to 1/temperature (unchecked candidates included, known non-canonical ones
        not). Returns its remaining bytes `r` and, for each j, the (257,) law of
        `r[j]` given `r[:j]` and a draft longer than j: what `sample_against`
        needs to correct the draft into exact samples. Covers whose last token
        starts here join the draw only if their model outputs are at hand: any
        known law keeps the result exact, and drafting costs no model call.
        """
        self._open_fresh(exact=False)
        m = self._members(lazy=True)
        keep = m.valid != 0
        if not keep.any() or temperature <= 0:
            return b"", []
        logw = m.logmass[keep] / temperature
        w = np.exp(logw - logw.max())
        cdf = np.cumsum(w)
        pick = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(w) - 1)
        live = [g for g in self.groups if g.seq in self._ctx]
        ids = np.concatenate([g.ids for g in live])[keep]
        offset = (self.n - np.concatenate([np.full(len(g.ids), g.start) for g in live]))[keep]
        draft = self.core.vocab.pieces[int(ids[pick])][int(offset[pick]):]
        return draft, draft_laws(self.core.table, self.core.lengths, ids, offset, w, draft)

    def sample_against(self, proposed: int, law: np.ndarray, u_accept: float, u_residual: float,
                       temperature: float = 1.0, allowed: np.ndarray | None = None) -> int:
        """Speculative sampling of the next byte: exact whatever the draft's law.

        Keep the drafted byte `proposed` (drawn from `law`) when
        `u_accept < p(proposed) / law(proposed)`, else draw from the residual
        `max(0, p - law)` by inversion of `u_residual`; the result follows `p`,
        this state's distribution raised to 1/temperature and restricted to
        `allowed` (Leviathan et al. 2023). `p` is known only within bounds until
        candidates are checked; both decisions check only until they are certain.
        """
        if temperature <= 0:
            raise ValueError("speculative sampling needs temperature > 0 (use sample for greedy)")
        lazy = LazyMass(self)
        accepted: bool | None = None
        while True:
            lo, hi = lazy.bounds(allowed)
            p_lo, p_hi = normalised_bounds(lo, hi, temperature)
            if accepted is None:
                bar = u_accept * law[proposed]
                if bar < p_lo[proposed]:
                    return proposed
                if bar >= p_hi[proposed]:
                    accepted = False
            if accepted is False:
                byte = decide(np.maximum(p_lo - law, 0.0), np.maximum(p_hi - law, 0.0), u_residual, 1.0)
                if byte is not None:
                    return byte
            lazy.refine(self.data)

    # -- moving on -----------------------------------------------------------------------------------
    def advance(self, byte: int) -> None:
        """Append one byte: keep the candidates that agree with it, open groups after it."""
        if not 0 <= byte < 256:
            raise ValueError(f"advance: byte must be in 0..255, got {byte}")
        self._open_fresh(exact=False)
        # candidates that now end exactly here are covers only if canonical: that one is a
        # spelling of the prefix, accounted for separately
        self.groups = advance_groups(self.groups, self.core.table, self.core.lengths, self.n, byte)
        self.data += bytes([byte])
        self._dist = None
        self._fresh_done = False
        self._after_advance()


class LazyMass:
    """Per-slot bounds on the valid mass of a state's covers, tightened on demand.

    Unchecked candidates count in the upper bound only; `refine` checks the
    heaviest unchecked ones (a growing chunk) with the tokenizer.
    """

    def __init__(self, state: CoverState):
        state._open_fresh(exact=False)
        self.state = state
        self.chunk = 32
        self._load()

    def _load(self) -> None:
        """Arrays over the evaluated groups; a pending sequence counts as mass on every slot."""
        state = self.state
        self.pending = state._pending()
        m = state._members(lazy=True)
        self.gi, self.ki, logm, self.nxt, self.val = m
        end = state.log_end_mass() if state._canonical() in state._ctx or not state.eos_ids else -math.inf
        pend = [state._logp(seq) for seq in self.pending]  # parents are evaluated: no model call
        ref = max([float(logm.max()) if len(logm) else -math.inf, end, *pend])
        if ref == -math.inf:
            ref = 0.0
        self.weight = np.exp(logm - ref)
        self.end_weight = math.exp(end - ref)
        self.pending_weight = sum(math.exp(lp - ref) for lp in pend)

    def bounds(self, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return slot_bounds(self.nxt, self.weight, self.val, self.end_weight, self.pending_weight, allowed)

    def decided(self) -> bool:
        """Whether every candidate is checked and every sequence evaluated (the bounds are exact)."""
        return not self.pending and not (self.val < 0).any()

    def refine(self, data: bytes) -> None:
        """Evaluate pending sequences (one model call), else check the next heaviest
        unchecked candidates; raise when nothing is left to learn (probability 0)."""
        unknown = np.flatnonzero(self.val < 0)
        if self.pending and (self.pending_weight >= self.weight[unknown].sum() or not len(unknown)):
            self.state._ensure(self.pending)
            self._load()
            return
        if not len(unknown):
            raise ValueError(
                f"the prefix {data[-20:]!r} has probability 0 under this model and tokenizer "
                "(no canonical token sequence covers it, or none with an allowed next byte)"
            )
        k = min(self.chunk, len(unknown))
        batch = unknown[np.argpartition(-self.weight[unknown], k - 1)[:k]] if k < len(unknown) else unknown
        self.chunk *= 2
        groups = self.state.groups
        for g_index in np.unique(self.gi[batch]).tolist():
            rows = batch[self.gi[batch] == g_index]
            self.state._check(groups[g_index], self.ki[rows])
            self.val[rows] = groups[g_index].valid[self.ki[rows]]
