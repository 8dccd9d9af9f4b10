"""Exact next-byte probabilities from a tokenized language model.

The Byte-Token Representation Lemma (Phan et al., ICLR 2025; the "valid
covering tree" of ByteSampler, the "covering" of Vieira et al.) turned into a
`ByteModel`.

Definitions (bytes are what the model reads: `vocab.prefix_bytes + user bytes`):
- A token sequence `t` is **canonical** when the tokenizer's own encoding of its
  bytes gives it back: `vocab.encode_raw(bytes(t)) == t` (no special tokens).
- The **covers** of a non-empty byte prefix `x`: canonical `t = t1..tk` whose
  bytes start with `x` while the bytes of `t1..t(k-1)` are a strict prefix of
  `x`. `P(b"") = 1`.
- `P(x) = sum over t in covers(x) of P(t)`, `P(t)` the model's prefix probability
  of `t` after the start token (the tokenizer's BOS; GPT-2-style tokenizers
  without one use `<|endoftext|>`, as those models were trained).
- `P(b | x) = P(xb) / P(x)`; the 257th slot, end of text, is
  `P(encode(x)) * P(EOS | encode(x)) / P(x)` (the only canonical `t` with
  `bytes(t) == x`). The 257 values are normalised; the mass the model puts on
  non-canonical continuations is reported as `invalid_mass`, never hidden.
- `tokenizations="all"` sums over every token sequence instead (Vieira et al.'s
  definition): a reference for tiny vocabularies. It needs a model call for
  every segmentation of the prefix, a number that grows exponentially with its
  length.

How it is computed. All covers share the encoding of the bytes before the last
*stable cut* (see `pretok.py`): the trunk, run once through the model and kept
in its KV cache. After the cut a handful of covers remain; each byte step
(1) adds the covers' overhanging bytes, (2) splits the model's next-token
distribution after the boundary sequence by first byte, keeping only the tokens
that make a canonical sequence (checked with the tokenizer itself), and (3)
keeps the covers that agree with the chosen byte. Model calls: one batched
forward over the new boundary sequences per byte, on top of the trunk cache.

What it does not do: normalisers (a lossy tokenizer is refused), special tokens
inside the text (they are bytes here), and beam pruning (it is exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import numpy as np
import torch

from .pretok import encode_many, stable_cuts
from .trie import TokenTrie
from .vocab import ByteVocab

EOT = 256  # index of the end-of-text slot in a next-byte distribution


class ByteState(Protocol):
    def logprobs(self) -> torch.Tensor: ...
    def advance(self, byte: int) -> None: ...


class ByteModel(Protocol):
    """Anything that gives the next-byte distribution (256 bytes + end of text)."""

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor: ...
    def start(self, prefix: bytes = b"") -> ByteState: ...


class TokenLM(Protocol):
    """What the byte model needs from a token LM: log-probs after trunk + each tail."""

    vocab_size: int
    calls: int

    def logprobs(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> torch.Tensor:
        """(len(tails), vocab_size) float64 log-softmax of the next token after `trunk + tail`."""
        ...


# -- the model side -------------------------------------------------------------------------


class HFTokenLM:
    """A Hugging Face causal LM behind the `TokenLM` protocol, with a trunk KV cache.

    The trunk (start token + stable prefix) is run once and extended in place;
    tails are right-padded into one batch on top of a copy of the trunk cache
    (causal attention makes padding after a tail harmless).
    """

    def __init__(self, model: Any, device: str | torch.device = "auto", max_batch: int = 64):
        if device == "auto":
            device = next(model.parameters()).device
        self.model = model.eval()
        self.device = torch.device(device)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.max_batch = max_batch
        self.calls = 0
        self._trunk: list[int] = []
        self._kv: Any = None
        self._last: torch.Tensor | None = None  # log-probs after the trunk

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, past: Any) -> Any:
        self.calls += 1
        return self.model(input_ids=ids.to(self.device), past_key_values=past, use_cache=True)

    def _check_length(self, n: int) -> None:
        if self.max_positions is not None and n > self.max_positions:
            raise ValueError(
                f"the prompt needs {n} tokens but the model's context window is {self.max_positions}; "
                "shorten the prompt"
            )

    def _set_trunk(self, trunk: Sequence[int]) -> None:
        trunk = list(trunk)
        if trunk == self._trunk:
            return
        self._check_length(len(trunk))
        keep = len(self._trunk) if trunk[: len(self._trunk)] == self._trunk and self._kv is not None else 0
        if keep == 0:
            self._kv = None
        new = torch.tensor([trunk[keep:]], dtype=torch.long)
        out = self._forward(new, self._kv)
        self._kv = out.past_key_values
        self._last = torch.log_softmax(out.logits[0, -1].double(), -1).cpu()
        self._trunk = trunk

    def _expanded_cache(self, batch: int) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache()
        for layer_idx, layer in enumerate(self._kv.layers):
            cache.update(layer.keys.expand(batch, *layer.keys.shape[1:]).contiguous(),
                         layer.values.expand(batch, *layer.values.shape[1:]).contiguous(), layer_idx)
        return cache

    def logprobs(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> torch.Tensor:
        self._set_trunk(trunk)
        out = torch.empty(len(tails), self.vocab_size, dtype=torch.float64)
        todo = [i for i, t in enumerate(tails) if len(t)]
        for i, t in enumerate(tails):
            if not len(t):
                out[i] = self._last
        for lo in range(0, len(todo), self.max_batch):
            chunk = todo[lo : lo + self.max_batch]
            width = max(len(tails[i]) for i in chunk)
            self._check_length(len(self._trunk) + width)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(tails[i])] = torch.tensor(tails[i])
            logits = self._forward(ids, self._expanded_cache(len(chunk))).logits
            for row, i in enumerate(chunk):
                out[i] = torch.log_softmax(logits[row, len(tails[i]) - 1].double(), -1).cpu()
        return out


# -- covers -----------------------------------------------------------------------------------


@dataclass
class _Cover:
    tail: tuple[int, ...]  # tokens after the trunk
    data: bytes  # their bytes (start with the prefix after the cut)
    logp: float  # log P(tail | trunk)


@dataclass
class _Core:
    """Shared, state-independent tables for one (model, tokenizer) pair."""

    vocab: ByteVocab
    lm: TokenLM
    trie: TokenTrie
    first_byte: torch.Tensor  # (V_model,) first byte of each token, -1 for specials / padded rows
    byte_ids: np.ndarray  # ids that stand for bytes
    start_id: int
    eos_ids: list[int]
    mode: str


class TokenByteModel:
    """Exact `ByteModel` over any tokenized causal LM (see the module docstring).

    `model` is a Hugging Face causal LM (or any object with the `TokenLM`
    interface), `tokenizer` anything `ByteVocab.from_tokenizer` reads.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        tokenizations: Literal["canonical", "all"] = "canonical",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "auto",
        start_id: int | None = None,
        eos_ids: Sequence[int] | None = None,
    ):
        if tokenizations not in ("canonical", "all"):
            raise ValueError(f"tokenizations must be 'canonical' or 'all', got {tokenizations!r}")
        vocab = tokenizer if isinstance(tokenizer, ByteVocab) else ByteVocab.from_tokenizer(tokenizer)
        vocab.require_lossless("TokenByteModel")
        if hasattr(model, "logprobs") and hasattr(model, "vocab_size"):
            lm = model
        else:
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            lm = HFTokenLM(model.to(device=device, dtype=dtype), device)
        if lm.vocab_size < len(vocab):
            raise ValueError(
                f"the model has {lm.vocab_size} output rows but the tokenizer has {len(vocab)} ids: "
                "they do not belong together (pass the tokenizer the model was trained with)"
            )
        start = start_id if start_id is not None else vocab.bos_id if vocab.bos_id is not None else vocab.eos_id
        if start is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token; pass start_id=")
        eos = list(eos_ids) if eos_ids is not None else [vocab.eos_id] if vocab.eos_id is not None else []
        first = torch.full((lm.vocab_size,), -1, dtype=torch.long)
        byte_ids = []
        for i, piece in enumerate(vocab.pieces):
            if piece:
                first[i] = piece[0]
                byte_ids.append(i)
        self.core = _Core(vocab, lm, TokenTrie(vocab.pieces), first, np.array(byte_ids), start, eos, tokenizations)
        self.vocab = vocab

    # -- ByteModel ----------------------------------------------------------------------------
    def start(self, prefix: bytes = b"") -> "TokenByteState":
        if not isinstance(prefix, (bytes, bytearray)):
            raise TypeError(f"prefix must be bytes, got {type(prefix).__name__}; use text.encode('utf-8')")
        return TokenByteState(self.core, bytes(prefix))

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor:
        return self.start(prefix).logprobs()

    @property
    def forward_calls(self) -> int:
        return self.core.lm.calls


class TokenByteState:
    """The covers of one prefix, the trunk they share, and cached model outputs."""

    def __init__(self, core: _Core, prefix: bytes):
        self.core = core
        self.data = core.vocab.prefix_bytes + prefix  # what the model reads
        self.cut = 0
        self.trunk = [core.start_id]
        self._ctx: dict[tuple[int, ...], torch.Tensor] = {}  # tail -> next-token log-probs
        self._seq: dict[tuple[int, ...], float] = {(): 0.0}  # tail -> log P(tail | trunk)
        self._dist: torch.Tensor | None = None
        self.invalid_mass = 0.0
        if core.mode == "canonical":
            self._move_cut()
        self.covers = self._enumerate_covers()

    # -- model outputs, cached per tail ----------------------------------------------------------
    def _ensure(self, tails: Sequence[tuple[int, ...]]) -> None:
        """Make next-token log-probs available after each tail and after each of its prefixes."""
        need = sorted({t[:i] for t in tails for i in range(len(t) + 1)} - self._ctx.keys(), key=len)
        if need:
            for tail, lp in zip(need, self.core.lm.logprobs(self.trunk, need)):
                self._ctx[tail] = lp

    def _logp(self, tail: tuple[int, ...]) -> float:
        if tail not in self._seq:
            self._ensure([tail])
            self._seq[tail] = self._logp(tail[:-1]) + float(self._ctx[tail[:-1]][tail[-1]])
        return self._seq[tail]

    # -- covers ----------------------------------------------------------------------------------
    def _enumerate_covers(self) -> list[_Cover]:
        """All covers of `self.data` relative to the cut (fresh, used by `start`)."""
        x = self.data[self.cut :]
        if not x:
            return [_Cover((), b"", 0.0)]
        if self.core.mode == "all":
            found = [(tail, data) for tail, data in _all_segmentations(self.core, x)]
        else:
            found = []
            candidates: list[tuple[int, int]] = []
            for j in range(max(0, len(x) - self.core.trie.max_len), len(x)):
                candidates += [(j, v) for v in self.core.trie.ids_with_prefix(x[j:])]
            datas = [x[:j] + self.core.vocab.pieces[v] for j, v in candidates]
            for (j, v), data, enc in zip(candidates, datas, encode_many(self.core.vocab, datas)):
                if enc and enc[-1] == v and len(data) - len(self.core.vocab.pieces[v]) == j:
                    found.append((tuple(enc), data))
        self._ensure([tail[:-1] for tail, _ in found])
        return [_Cover(tail, data, self._logp(tail)) for tail, data in found]

    def _boundary(self) -> dict[tuple[int, ...], list[int]]:
        """Sequences whose bytes are exactly the prefix after the cut, with the tokens that
        may follow each one (a canonical sequence, or any sequence in "all" mode)."""
        x = self.data[self.cut :]
        vocab = self.core.vocab
        ids = self.core.byte_ids.tolist()
        if self.core.mode == "all":
            segs = [tail for tail, data in _all_segmentations(self.core, x, exact=True)] if x else [()]
            return {seg: ids for seg in segs}
        groups: dict[tuple[int, ...], list[int]] = {}
        datas = [x + vocab.pieces[v] for v in ids]
        for v, data, enc in zip(ids, datas, encode_many(vocab, datas)):
            if enc and enc[-1] == v and len(data) - len(vocab.pieces[v]) == len(x):
                groups.setdefault(tuple(enc[:-1]), []).append(v)
        return groups

    # -- the distribution --------------------------------------------------------------------------
    def logprobs(self) -> torch.Tensor:
        """(257,) log-probs of the next byte (0-255) or end of text (256); logsumexp == 0."""
        if self._dist is None:
            self._dist = self._compute()
        return self._dist.clone()

    def _compute(self) -> torch.Tensor:
        core = self.core
        n = len(self.data) - self.cut
        self._groups = self._boundary()
        self._ensure(list(self._groups))
        # every quantity is relative to P(trunk); shift by the largest cover for stability
        ref = max([c.logp for c in self.covers] + [self._logp(s) for s in self._groups])
        mass = torch.zeros(257, dtype=torch.float64)
        for cover in self.covers:
            if len(cover.data) > n:
                mass[cover.data[n]] += math.exp(cover.logp - ref)
        for seq, ids in self._groups.items():
            idx = torch.tensor(ids, dtype=torch.long)
            probs = torch.exp(self._ctx[seq][idx] + (self._logp(seq) - ref))
            mass.index_add_(0, core.first_byte[idx], probs)
        if core.mode == "all":
            ends = list(self._groups)
        else:
            ends = [tuple(core.vocab.encode_raw(self.data[self.cut :]))] if n else [()]
            self._ensure(ends)
        if core.eos_ids:
            eos = torch.tensor(core.eos_ids)
            for seq in ends:
                mass[EOT] += float(torch.exp(torch.logsumexp(self._ctx[seq][eos], 0) + self._logp(seq) - ref))
        total = float(mass.sum())
        if total <= 0:
            raise ValueError(
                f"the prefix {self.data[-20:]!r} has probability 0 under this model and tokenizer "
                "(no token sequence covers it)"
            )
        p_x = sum(math.exp(c.logp - ref) for c in self.covers) if n else 1.0 * math.exp(-ref)
        self.invalid_mass = 1.0 - total / p_x if p_x > 0 else 0.0
        return torch.log(mass / total)

    # -- moving on -----------------------------------------------------------------------------------
    def advance(self, byte: int) -> None:
        """Append one byte: keep the covers that agree with it, add the ones that start here."""
        if not 0 <= byte < 256:
            raise ValueError(f"advance: byte must be in 0..255, got {byte}")
        if self._dist is None:
            self._dist = self._compute()
        n = len(self.data) - self.cut
        kept = [c for c in self.covers if len(c.data) > n and c.data[n] == byte]
        for seq, ids in self._groups.items():
            for v in ids:
                if int(self.core.first_byte[v]) == byte:
                    tail = seq + (v,)
                    self._seq[tail] = self._logp(seq) + float(self._ctx[seq][v])
                    kept.append(_Cover(tail, self.data[self.cut :] + self.core.vocab.pieces[v], self._seq[tail]))
        self.data += bytes([byte])
        self.covers = kept
        self._dist = None
        if self.core.mode == "canonical":
            self._move_cut()

    def _move_cut(self) -> None:
        """Advance the cut to the last stable cut, moving the shared tokens into the trunk."""
        cuts = stable_cuts(self.core.vocab, self.data[self.cut :])
        if not cuts:
            return
        step = cuts[-1]
        delta = tuple(self.core.vocab.encode_raw(self.data[self.cut : self.cut + step]))
        covers = getattr(self, "covers", None)
        if covers is not None and any(c.tail[: len(delta)] != delta for c in covers):
            return  # the covers disagree: this boundary is not stable for them; keep the old cut
        self._ensure([delta])
        base = self._logp(delta)
        k = len(delta)
        self._ctx = {t[k:]: lp for t, lp in self._ctx.items() if t[:k] == delta}
        self._seq = {t[k:]: lp - base for t, lp in self._seq.items() if t[:k] == delta}
        self._seq[()] = 0.0
        if covers is not None:
            self.covers = [_Cover(c.tail[k:], c.data[step:], c.logp - base) for c in covers]
        self.trunk = self.trunk + list(delta)
        self.cut += step


def _all_segmentations(core: _Core, x: bytes, exact: bool = False) -> list[tuple[tuple[int, ...], bytes]]:
    """Every token sequence whose bytes cover `x` (or equal it, `exact=True`), any tokenization."""
    pieces = core.vocab.pieces
    out: list[tuple[tuple[int, ...], bytes]] = []

    def walk(pos: int, seq: tuple[int, ...]) -> None:
        if pos == len(x):
            if exact:
                out.append((seq, x))
            return
        for length, ids in core.trie.prefix_ids(x[pos:]):
            for v in ids:
                walk(pos + length, seq + (v,))
        if not exact:
            for v in core.trie.ids_with_prefix(x[pos:]):
                if len(pieces[v]) > len(x) - pos:
                    out.append((seq + (v,), x[:pos] + pieces[v]))

    walk(0, ())
    if not exact:  # sequences ending exactly at the end of x are covers too
        out += [(seq, data) for seq, data in _all_segmentations(core, x, exact=True) if seq]
    return out
