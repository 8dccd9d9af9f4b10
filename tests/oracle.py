"""A brute-force byte-level oracle: every token sequence of a tiny vocabulary, no caching tricks.

It shares nothing with `exact.py` but the definition of a canonical sequence
(`canonical_encode`): it lists token sequences by a linear scan of the
vocabulary, keeps the covers, and sums probabilities from uncached full
forward passes of a tiny float64 model (after an optional token context).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.exact import EOT
from tokenshift.bytelevel.pretok import canonical_encode


class Oracle:
    def __init__(self, model, vocab: ByteVocab, start_id: int, eos_id: int, canonical: bool = True,
                 context: tuple[int, ...] = ()):
        self.model, self.vocab, self.start, self.eos, self.canonical = model, vocab, start_id, eos_id, canonical
        self.context = tuple(context)  # token ids read after the start token (a FIM prompt)
        self.tokens = [(i, p) for i, p in enumerate(vocab.pieces) if p]
        self._out: dict[tuple[int, ...], torch.Tensor] = {}

    def next_token(self, seq: tuple[int, ...]) -> torch.Tensor:
        if seq not in self._out:
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([[self.start, *self.context, *seq]])).logits[0, -1]
            self._out[seq] = torch.log_softmax(logits.double(), -1)
        return self._out[seq]

    def logp(self, seq: tuple[int, ...]) -> float:
        return sum(float(self.next_token(seq[:i])[t]) for i, t in enumerate(seq))

    def ok(self, seq: tuple[int, ...]) -> bool:
        if not self.canonical:
            return True
        data = b"".join(self.vocab.pieces[t] for t in seq)
        return tuple(canonical_encode(self.vocab, data)) == seq

    def covers(self, x: bytes) -> list[tuple[int, ...]]:
        out = []

        def walk(pos: int, seq: tuple[int, ...]) -> None:
            for i, piece in self.tokens:
                rest = x[pos:]
                if piece.startswith(rest) or rest.startswith(piece) and len(piece) == len(rest):
                    out.append(seq + (i,))  # last token reaches the end of x
                elif rest.startswith(piece):
                    walk(pos + len(piece), seq + (i,))

        walk(0, ())
        return [s for s in out if self.ok(s)]

    def spellings(self, x: bytes) -> list[tuple[int, ...]]:
        out = []

        def walk(pos: int, seq: tuple[int, ...]) -> None:
            if pos == len(x):
                out.append(seq)
                return
            for i, piece in self.tokens:
                if x[pos:].startswith(piece):
                    walk(pos + len(piece), seq + (i,))

        walk(0, ())
        return [s for s in out if self.ok(s)]

    def mass(self, x: bytes) -> float:
        if not x:
            return 1.0
        return sum(math.exp(self.logp(s)) for s in self.covers(x))

    def next_byte(self, x: bytes) -> np.ndarray:
        p = np.zeros(257)
        firsts = {piece[0] for _, piece in self.tokens}
        for b in firsts:
            p[b] = self.mass(x + bytes([b]))
        p[EOT] = sum(math.exp(self.logp(s) + float(self.next_token(s)[self.eos])) for s in self.spellings(x)) \
            if x else math.exp(float(self.next_token(())[self.eos]))
        return p / p.sum()
