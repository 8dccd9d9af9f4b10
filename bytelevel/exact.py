"""Exact next-byte probabilities from a tokenized language model.

The Byte-Token Representation Lemma (Phan et al., ICLR 2025; the "valid
covering tree" of ByteSampler, the "covering" of Vieira et al.) turned into a
`ByteModel`.

Definitions (bytes are what the model reads: `vocab.prefix_bytes + user bytes`):
- A token sequence `t` is **canonical** when the tokenizer's own encoding of its
  bytes gives it back: `canonical_encode(bytes(t)) == t` (no special tokens;
  `pretok.canonical_encode` is `vocab.encode_raw`, plus a rule for bytes that
  stop inside a character).
- The **covers** of a non-empty byte prefix `x`: canonical `t = t1..tk` whose
  bytes start with `x` while the bytes of `t1..t(k-1)` are a strict prefix of
  `x`. `P(b"") = 1`.
- `P(x) = sum over t in covers(x) of P(t)`, `P(t)` the model's prefix probability
  of `t` after the start token: `<|endoftext|>` when the vocabulary has it (the
  token pretraining packs documents after; an instruct model's BOS may be a chat
  marker), else BOS, else EOS (`ByteVocab.start_id`).
- `P(b | x) = P(xb) / P(x)`; the 257th slot, end of text, is
  `P(c) * P(EOS | c)` for the one canonical `c` with `bytes(c) == x`, over
  `P(x)`. The 257 values are normalised; the mass the model puts on
  non-canonical continuations is reported as `invalid_mass`, never hidden.
- `tokenizations="all"` sums over every token sequence instead (Vieira et al.'s
  definition): a reference for tiny vocabularies. It needs a model call for
  every segmentation of the prefix, a number that grows exponentially with its
  length.

How it is computed. All covers share the encoding of the bytes before the last
*stable cut* (`pretok.stable_cuts`; inside a long run of letters, the last
position no token can lie across, `pretok.letter_cut`): the trunk, run once
through the model and kept in its KV cache. (A long pre-token that is not a
run of letters, or one where tokens span every position, such as "aaaa..."
when a vocabulary has tokens of several a's, keeps its cut at its start, and
the work per byte grows with it.) After the cut, the covers are kept as *groups*: a
sequence `seq` that spells the first `start` bytes, and an array of candidate
last tokens that agree with the bytes seen so far. Each byte filters every
group with one vectorised comparison and opens a group after the canonical
sequence of the new prefix. Whether a candidate is canonical is decided
lazily, by the tokenizer, and only as far as a result needs it:

- `logprobs()` (the full distribution) checks every candidate;
- `sample()` draws the next byte by inversion, checking candidates from the
  heaviest down only until the byte is certain whatever the unchecked ones
  turn out to be (top-p needs all of them);
- `log_prefix_mass()` (scoring) needs only the few candidates that survive.

So the exact answer never depends on the unchecked mass being small; only the
cost does. Model calls: one batched forward per new group sequence; sampling
prefetches the sequences along the likeliest token's bytes in one call, so it
costs about one forward per token.

What it does not do: normalisers (a lossy tokenizer is refused), special tokens
inside the text (they are bytes here), and beam pruning (it is exact).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Sequence

import numpy as np
import torch

from .pretok import canonical_encode, encode_many, letter_cut, letter_cuts_supported, stable_cuts
from .trie import TokenReach, TokenTrie
from .utf8 import incomplete_tail, utf8_allowed
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

    The trunk (start token + stable prefix) is run once and extended in place.
    `logprobs_tree` packs many tails into one row as a token tree: each token
    attends to the trunk and to its own ancestors only (a 4D mask, positions by
    depth), so tails that share tokens share their computation, and one row of
    n tokens costs far less than n rows on a CPU. `logprobs` right-pads tails
    into a batch instead (the fallback, and the path for models whose sliding
    window the tree would exceed). When the trunk grows by tokens that were
    just evaluated, their keys and values are gathered from that call instead
    of being recomputed.
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
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._trunk: list[int] = []
        self._kv: Any = None
        self._last: torch.Tensor | None = None  # log-probs after the trunk
        self._batch: tuple[list[tuple[int, ...]], Any, torch.Tensor] | None = None  # tails, cache, logits
        # the last token tree: the cache column of each tail it holds, the cache, the log-probs after each tail
        self._tree: tuple[dict[tuple[int, ...], int], Any, dict[tuple[int, ...], torch.Tensor]] | None = None
        self.window = getattr(model.config, "sliding_window", None) or None
        self.max_nodes = 256

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, past: Any, **extra: Any) -> tuple[torch.Tensor, Any]:
        self.calls += 1
        extra = {k: v.to(self.device) for k, v in extra.items()}
        out = self.model(input_ids=ids.to(self.device), use_cache=True, **{self._cache_kw: past}, **extra)
        cache = getattr(out, "cache", None) or out.past_key_values
        return out.logits, cache

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
        delta = tuple(trunk[keep:])
        if keep and self._batch is not None:
            tails, cache, logits = self._batch
            row = next((r for r, t in enumerate(tails) if t[: len(delta)] == delta), None)
            if row is not None:  # reuse the batch row that already ran these tokens
                self._kv = _slice_cache(cache, row, keep + len(delta))
                self._last = torch.log_softmax(logits[row, len(delta) - 1].double(), -1).cpu()
                self._trunk, self._batch, self._tree = trunk, None, None
                return
        if keep and self._tree is not None and delta in self._tree[0]:
            columns, cache, logprobs = self._tree
            self._kv = _gather_cache(cache, keep, [columns[delta[:i]] for i in range(1, len(delta) + 1)])
            self._last = logprobs[delta]
            self._trunk, self._batch, self._tree = trunk, None, None
            return
        if keep == 0:
            self._kv = None
        logits, self._kv = self._forward(torch.tensor([list(delta)], dtype=torch.long), self._kv)
        self._last = torch.log_softmax(logits[0, -1].double(), -1).cpu()
        self._trunk, self._batch, self._tree = trunk, None, None

    def extend(self, trunk: Sequence[int], delta: Sequence[int]) -> tuple[float, torch.Tensor]:
        """Grow the trunk by `delta` in one forward: (log P(delta | trunk), log-probs after it)."""
        self._set_trunk(trunk)
        self._check_length(len(self._trunk) + len(delta))
        logits, self._kv = self._forward(torch.tensor([list(delta)], dtype=torch.long), self._kv)
        lp = torch.log_softmax(logits[0].double(), -1).cpu()
        total = float(self._last[delta[0]]) + sum(float(lp[i - 1, t]) for i, t in enumerate(delta) if i)
        self._trunk, self._last, self._batch, self._tree = list(trunk) + list(delta), lp[-1], None, None
        return total, lp[-1]

    def logprobs_tree(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> dict[tuple[int, ...], torch.Tensor]:
        """Float64 log-probs of the next token after `trunk + p`, for every prefix `p` of every tail.

        One forward for all distinct prefixes (the tree's nodes). Tokens that the
        previous tree already ran and that every tail starts with are not run
        again: their keys and values are gathered from that call. Falls back to
        `logprobs` when the tree is too big or would reach past a sliding window.
        """
        self._set_trunk(trunk)
        base = len(self._trunk)
        tails = [tuple(t) for t in tails]
        out: dict[tuple[int, ...], torch.Tensor] = {(): self._last}
        shared: tuple[int, ...] = ()  # the longest common prefix of the tails that the last tree holds
        if self._tree is not None and tails and all(tails):
            columns, _, before = self._tree
            first = tails[0]
            common = next((k for k in range(len(first)) if any(len(t) <= k or t[k] != first[k] for t in tails)),
                          len(first))
            common = min(common, min(len(t) for t in tails) - 1)  # keep at least one token to run per tail
            shared = next((first[:k] for k in range(common, 0, -1) if first[:k] in columns), ())
            for k in range(1, len(shared) + 1):
                out[shared[:k]] = before[shared[:k]]
        nodes: dict[tuple[int, ...], int] = {}
        parents: list[int] = []
        for tail in tails:
            for i in range(len(shared) + 1, len(tail) + 1):
                p = tail[:i]
                if p not in nodes:
                    nodes[p] = len(nodes)
                    parents.append(nodes.get(p[:-1], -1))
        if not nodes:
            return out
        self._check_length(base + max(len(p) for p in nodes))
        if len(nodes) > self.max_nodes or (self.window is not None and base + len(shared) + len(nodes) > self.window):
            keys = list(nodes)
            for p, lp in zip(keys, self.logprobs(self._trunk, keys)):
                out[p] = lp
            return out
        if shared:
            columns, cache, _ = self._tree
            past = _gather_cache(cache, base, [columns[shared[:k]] for k in range(1, len(shared) + 1)])
        else:
            past = _expand_cache(self._kv, 1)
        start = base + len(shared)  # cache column of the first node
        n = len(nodes)
        ids = torch.tensor([[p[-1] for p in nodes]], dtype=torch.long)
        positions = torch.tensor([[base + len(p) - 1 for p in nodes]], dtype=torch.long)
        see = torch.zeros(n, start + n, dtype=torch.bool)
        see[:, :start] = True
        for i in range(n):
            j = i
            while j >= 0:
                see[i, start + j] = True
                j = parents[j]
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(1, 1, n, start + n, dtype=dtype).masked_fill(~see, torch.finfo(dtype).min)
        logits, cache = self._forward(ids, past, attention_mask=mask, position_ids=positions)
        lp = torch.log_softmax(logits[0].double(), -1).cpu()
        columns = {shared[:k]: base + k - 1 for k in range(1, len(shared) + 1)}
        for p, i in nodes.items():
            out[p] = lp[i]
            columns[p] = start + i
        self._tree, self._batch = (columns, cache, out), None
        return out

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
            logits, cache = self._forward(ids, _expand_cache(self._kv, len(chunk)))
            self._batch, self._tree = ([tuple(tails[i]) for i in chunk], cache, logits), None
            for row, i in enumerate(chunk):
                out[i] = torch.log_softmax(logits[row, len(tails[i]) - 1].double(), -1).cpu()
        return out


def _expand_cache(kv: Any, batch: int) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for idx, layer in enumerate(kv.layers):
        cache.update(layer.keys.expand(batch, *layer.keys.shape[1:]).contiguous(),
                     layer.values.expand(batch, *layer.values.shape[1:]).contiguous(), idx)
    return cache


def _gather_cache(kv: Any, keep: int, columns: list[int]) -> Any:
    """Row 0's first `keep` positions followed by `columns` (a tree path), as a fresh cache."""
    from transformers import DynamicCache

    cache = DynamicCache()
    index = torch.tensor(list(range(keep)) + columns, dtype=torch.long)
    for idx, layer in enumerate(kv.layers):
        cache.update(layer.keys[:1].index_select(2, index.to(layer.keys.device)),
                     layer.values[:1].index_select(2, index.to(layer.values.device)), idx)
    return cache


def _slice_cache(kv: Any, row: int, length: int) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for idx, layer in enumerate(kv.layers):
        cache.update(layer.keys[row : row + 1, :, :length].contiguous(),
                     layer.values[row : row + 1, :, :length].contiguous(), idx)
    return cache


# -- covers -----------------------------------------------------------------------------------


@dataclass
class _Group:
    """Covers `seq + [v]` for each candidate `v` in `ids`; `bytes(seq)` is the first `start` bytes."""

    seq: tuple[int, ...]
    start: int
    ids: np.ndarray  # int64 candidate last tokens
    valid: np.ndarray  # int8: 1 canonical, 0 not, -1 not checked yet


@dataclass
class _Core:
    """Shared, state-independent tables for one (model, tokenizer) pair."""

    vocab: ByteVocab
    lm: TokenLM
    trie: TokenTrie
    table: np.ndarray  # (V, max_len + 1) uint16 token bytes, 256 past the end; row of -1 for specials
    lengths: np.ndarray  # (V,) byte length of each token, 0 for specials
    byte_ids: np.ndarray  # ids that stand for bytes
    probes: list[bytes]  # one token's bytes per distinct first character (pre-tokenizer probes)
    start_id: int
    eos_ids: list[int]
    mode: str
    letter_cuts: bool = False  # cuts inside runs of letters are exact for this tokenizer (pretok.letter_cut)


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
        start = start_id if start_id is not None else vocab.start_id
        eos = list(eos_ids) if eos_ids is not None else [vocab.eos_id] if vocab.eos_id is not None else []
        max_len = max(len(p) for p in vocab.pieces if p)
        table = np.full((lm.vocab_size, max_len + 1), 256, dtype=np.uint16)
        lengths = np.zeros(lm.vocab_size, dtype=np.int64)
        probes: dict[bytes, bytes] = {}
        for i, piece in enumerate(vocab.pieces):
            if piece:
                table[i, : len(piece)] = np.frombuffer(piece, dtype=np.uint8)
                lengths[i] = len(piece)
                probes.setdefault(_probe_key(piece), piece)
        self.core = _Core(vocab, lm, TokenTrie(vocab.pieces), table, lengths, np.flatnonzero(lengths),
                          sorted(probes.values()), start, eos, tokenizations,
                          tokenizations == "canonical" and letter_cuts_supported(vocab))
        self.vocab = vocab

    # -- ByteModel ----------------------------------------------------------------------------
    def start(self, prefix: bytes = b"", context: Sequence[int] = (), end_ids: Sequence[int] | None = None,
              raw: bool = False) -> "TokenByteState":
        """The state after `prefix`. `context`: token ids the model reads after the
        start token and before the bytes (a FIM prompt, a chat template); `end_ids`:
        the tokens that end the text there (default: the tokenizer's EOS); `raw`:
        no SentencePiece dummy prefix before the bytes (text that continues a context)."""
        if not isinstance(prefix, (bytes, bytearray)):
            raise TypeError(f"prefix must be bytes, got {type(prefix).__name__}; use text.encode('utf-8')")
        size = self.core.lm.vocab_size
        bad = [t for t in list(context) + list(end_ids or []) if not 0 <= int(t) < size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the model's vocabulary of {size}")
        return TokenByteState(self.core, bytes(prefix), [int(t) for t in context],
                              None if end_ids is None else [int(t) for t in end_ids], raw)

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor:
        return self.start(prefix).logprobs()

    @property
    def forward_calls(self) -> int:
        return self.core.lm.calls


def _probe_key(piece: bytes) -> Any:
    """Tokens that start alike for a pre-tokenizer: same ASCII first character, same
    Unicode category of a non-ASCII one, or the same lead byte of a cut character."""
    import unicodedata

    for size in (1, 2, 3, 4):
        try:
            ch = piece[:size].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return ch if ch.isascii() else unicodedata.category(ch)
    return piece[:1]


class TokenByteState:
    """The covers of one prefix (as groups), the trunk they share, cached model outputs."""

    def __init__(self, core: _Core, prefix: bytes, context: Sequence[int] = (),
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
        self._fresh: dict[bytes, list[tuple[int, ...]]] = {}  # bytes after the cut -> `_fresh_seqs`
        self._dist: torch.Tensor | None = None
        self.invalid_mass = 0.0
        self.groups: list[_Group] = []
        self._reach = TokenReach(core.trie) if core.letter_cuts else None
        self._scanned = (-1, -1)  # (cut, complete bytes) of the last stable-cut search
        if core.mode == "canonical":
            self._move_cut()
        self.groups = self._initial_groups()
        self._fresh_done = False  # the groups opened at the current position are complete

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
        lm = self.core.lm
        if hasattr(lm, "logprobs_tree"):
            leaves = [t for t in need if not any(len(o) > len(t) and o[: len(t)] == t for o in need)]
            got = lm.logprobs_tree(self.trunk, leaves)
            for tail in need:
                self._ctx[tail] = got[tail]
            for tail, lp in got.items():  # ancestors come for free
                self._ctx.setdefault(tail, lp)
        else:
            for tail, lp in zip(need, lm.logprobs(self.trunk, need)):
                self._ctx[tail] = lp

    def _logp(self, tail: tuple[int, ...]) -> float:
        if tail not in self._seq:
            self._ensure([tail[:-1]])  # the parent's outputs give this one's probability
            self._seq[tail] = self._logp(tail[:-1]) + float(self._ctx[tail[:-1]][tail[-1]])
        return self._seq[tail]

    # -- opening groups ----------------------------------------------------------------------------
    def _initial_groups(self) -> list[_Group]:
        """Groups for a fresh prefix: candidates starting before the end, checked now."""
        x = self.data[self.cut :]
        core = self.core
        if core.mode == "all":
            groups = []
            for j in range(max(0, len(x) - core.trie.max_len + 1), len(x)):
                ids = np.array(core.trie.ids_with_prefix(x[j:]), dtype=np.int64)
                ids = ids[core.lengths[ids] > len(x) - j]
                for seq in _segmentations(core, x[:j]) if len(ids) else []:
                    groups.append(_Group(seq, j, ids, np.ones(len(ids), dtype=np.int8)))
            self._ensure([g.seq for g in groups])
            return groups
        found: dict[tuple[tuple[int, ...], int], list[int]] = {}
        cands = [(j, v) for j in range(max(0, len(x) - core.trie.max_len + 1), len(x))
                 for v in core.trie.ids_with_prefix(x[j:]) if core.lengths[v] > len(x) - j]
        encs = self._encode_all([x[:j] + core.vocab.pieces[v] for j, v in cands])
        for (j, v), enc in zip(cands, encs):
            if enc and enc[-1] == v and len(x[:j]) + len(core.vocab.pieces[v]) == sum(
                int(core.lengths[t]) for t in enc
            ) and sum(int(core.lengths[t]) for t in enc[:-1]) == j:
                found.setdefault((enc[:-1], j), []).append(v)
        groups = [_Group(seq, j, np.array(ids, dtype=np.int64), np.ones(len(ids), dtype=np.int8))
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
        if not pos or not _needs_probes(x):
            self._fresh[x] = sorted(seqs)
            return self._fresh[x]
        lengths = self.core.lengths
        for probe in self._probes_after(x):
            enc = self._encode(x + probe)
            total = 0
            for k, t in enumerate(enc):
                if total == pos:
                    seqs.add(enc[:k])
                    break
                total += int(lengths[t])
                if total > pos:
                    break
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
        """Open the groups whose last token starts at the current position."""
        if self._fresh_done and not exact:
            return
        core = self.core
        n = self.n
        self.groups = [g for g in self.groups if g.start < n]
        if core.mode == "all":
            seqs = _segmentations(core, self.data[self.cut :]) if n else [()]
            ids = core.byte_ids
            self.groups += [_Group(s, n, ids, np.ones(len(ids), dtype=np.int8)) for s in seqs]
        elif exact:  # check every token after every sequence: the full, slow answer
            x = self.data[self.cut :]
            ids = core.byte_ids
            found: dict[tuple[int, ...], list[int]] = {}
            encs = self._encode_all([x + core.vocab.pieces[v] for v in ids.tolist()])
            for v, enc in zip(ids.tolist(), encs):
                if enc and enc[-1] == v and sum(int(core.lengths[t]) for t in enc[:-1]) == n:
                    found.setdefault(enc[:-1], []).append(v)
            self.groups += [_Group(s, n, np.array(v, dtype=np.int64), np.ones(len(v), dtype=np.int8))
                            for s, v in found.items()]
        else:
            ids = core.byte_ids
            self.groups += [_Group(s, n, ids, np.full(len(ids), -1, dtype=np.int8)) for s in self._fresh_seqs(n)]
        self._fresh_done = True

    # -- validity ------------------------------------------------------------------------------------
    def _check(self, group: _Group, where: np.ndarray) -> None:
        """Decide canonicity of `group.ids[where]` with the tokenizer."""
        x = self.data[self.cut : self.cut + group.start]
        pieces = self.core.vocab.pieces
        ks = where.tolist()
        encs = self._encode_all([x + pieces[int(group.ids[k])] for k in ks])
        for k, enc in zip(ks, encs):
            group.valid[k] = enc == group.seq + (int(group.ids[k]),)

    def _members(self, lazy: bool = False) -> tuple[list[_Group], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat view: group index, index in group, log mass, next byte, validity.

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
            return self.groups, *(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.float64, np.int64)), \
                np.zeros(0, dtype=np.int8)
        return self.groups, np.concatenate(gi), np.concatenate(ki), np.concatenate(logm), np.concatenate(nxt), \
            np.concatenate(val)

    def _pending(self) -> list[tuple[int, ...]]:
        """Sequences of open groups (or the end of text) not evaluated by the model yet."""
        seqs = {g.seq for g in self.groups if g.seq not in self._ctx}
        if self.core.mode == "canonical" and self.eos_ids and self._canonical() not in self._ctx:
            seqs.add(self._canonical())
        return sorted(seqs)

    def _end_logmass(self) -> float:
        """log P(c) P(EOS | c) for the canonical c of the prefix (relative to the trunk)."""
        if not self.eos_ids:
            return -math.inf
        ends = [self._canonical()] if self.core.mode == "canonical" or not self.n else \
            _segmentations(self.core, self.data[self.cut :])
        self._ensure(ends)
        eos = torch.tensor(self.eos_ids)
        return float(torch.logsumexp(torch.tensor(
            [float(torch.logsumexp(self._ctx[c][eos], 0)) + self._logp(c) for c in ends], dtype=torch.float64), 0))

    # -- the distribution --------------------------------------------------------------------------
    def logprobs(self) -> torch.Tensor:
        """(257,) log-probs of the next byte (0-255) or end of text (256); logsumexp == 0."""
        if self._dist is None:
            self._open_fresh(exact=True)
            for g in self.groups:
                unknown = np.flatnonzero(g.valid < 0)
                if len(unknown):
                    self._check(g, unknown)
            _, _, _, logm, nxt, val = self._members()
            ref = max([float(logm.max()) if len(logm) else -math.inf, self._end_logmass()])
            mass = np.zeros(257)
            np.add.at(mass, nxt[val == 1], np.exp(logm[val == 1] - ref))
            mass[EOT] = math.exp(self._end_logmass() - ref)
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
        definitions above; only the candidates still alive are checked.
        """
        n = self.n
        if not n:
            return 0.0
        exact = [self._canonical()] if self.core.mode == "canonical" else _segmentations(self.core, self.data[self.cut :])
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

    def bounds(self) -> "DistributionBounds":
        """Certified bounds on `logprobs()` that tighten on demand.

        `logprobs()` decides the canonicity of every candidate token (tens of
        thousands after a fresh cover); the bounds start from the candidates the
        model has scored and check the heaviest first, each `refine()` a growing
        chunk, so a caller that needs the distribution only to some precision
        (ensembles' normalisers, see ensemble.py) pays for that precision only.
        """
        if self._dist is not None or self.core.mode == "all":
            return DistributionBounds.exact(self.logprobs())
        return DistributionBounds(_LazyMass(self), self.data)

    # -- sampling -------------------------------------------------------------------------------------
    def sample(self, u: float, temperature: float = 1.0, top_p: float = 1.0,
               allowed: np.ndarray | None = None) -> int:
        """The next byte (or `EOT`) for a uniform draw `u`, exactly as from `logprobs()`.

        Inversion over bytes 0..256 with the distribution raised to 1/temperature;
        canonicity is checked from the heaviest candidate down until the byte that
        `u` selects cannot change. temperature 0 is argmax. top_p < 1 checks all.
        `allowed` (257 booleans) conditions on a set of slots (e.g. valid UTF-8).
        """
        if top_p < 1.0 or self.core.mode == "all":
            return _pick(self.logprobs(), u, temperature, top_p, allowed)
        lazy = _LazyMass(self)
        while True:
            lo, hi = lazy.bounds(allowed)
            byte = _decide(lo, hi, u, temperature)
            if byte is not None:
                return byte
            lazy.refine(self.data)

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
        _, gi, ki, logm, nxt, val = self._members(lazy=True)
        keep = val != 0
        if not keep.any() or temperature <= 0:
            return b"", []
        logw = logm[keep] / temperature
        w = np.exp(logw - logw.max())
        cdf = np.cumsum(w)
        pick = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(w) - 1)
        live = [g for g in self.groups if g.seq in self._ctx]
        ids = np.concatenate([g.ids for g in live])[keep]
        offset = (self.n - np.concatenate([np.full(len(g.ids), g.start) for g in live]))[keep]
        rest = self.core.lengths[ids] - offset  # bytes each candidate has left
        draft = self.core.vocab.pieces[int(ids[pick])][int(offset[pick]):]
        laws, alive = [], np.ones(len(w), dtype=bool)
        for j in range(len(draft)):
            alive &= rest > j
            at = self.core.table[ids, np.minimum(offset + j, self.core.table.shape[1] - 1)].astype(np.int64)
            law = np.bincount(at[alive], weights=w[alive], minlength=257)[:257]
            laws.append(law / law.sum())
            alive &= at == draft[j]
        return draft, laws

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
        lazy = _LazyMass(self)
        accepted: bool | None = None
        while True:
            lo, hi = lazy.bounds(allowed)
            p_lo, p_hi = _normalised_bounds(lo, hi, temperature)
            if accepted is None:
                bar = u_accept * law[proposed]
                if bar < p_lo[proposed]:
                    return proposed
                if bar >= p_hi[proposed]:
                    accepted = False
            if accepted is False:
                byte = _decide(np.maximum(p_lo - law, 0.0), np.maximum(p_hi - law, 0.0), u_residual, 1.0)
                if byte is not None:
                    return byte
            lazy.refine(self.data)

    def prefetch(self, path: bytes) -> None:
        """Evaluate, in one model call, the sequences needed here and if the next bytes are `path`."""
        if self.core.mode == "all":
            return
        saved = self.data
        tails = [g.seq for g in self.groups]
        for j in range(len(path) + 1):
            self.data = saved + path[:j]
            tails += self._fresh_seqs(self.n)
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
        if self.core.mode == "all":
            return b""
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

    # -- moving on -----------------------------------------------------------------------------------
    def advance(self, byte: int) -> None:
        """Append one byte: keep the candidates that agree with it, open groups after it."""
        if not 0 <= byte < 256:
            raise ValueError(f"advance: byte must be in 0..255, got {byte}")
        self._open_fresh(exact=False)
        n = self.n
        kept = []
        for g in self.groups:
            mask = self.core.table[g.ids, n - g.start] == byte
            if mask.any():
                kept.append(_Group(g.seq, g.start, g.ids[mask], g.valid[mask]))
        self.data += bytes([byte])
        self._dist = None
        self._fresh_done = False
        # candidates that now end exactly here are covers only if canonical: that one is the
        # canonical sequence of the prefix, accounted for separately
        self.groups = []
        for g in kept:
            alive = self.core.lengths[g.ids] > n + 1 - g.start
            if alive.any():
                self.groups.append(_Group(g.seq, g.start, g.ids[alive], g.valid[alive]))
        if self.core.mode == "canonical":
            self._move_cut()

    def _move_cut(self) -> None:
        """Advance the cut to the last stable or sealed letter cut, moving the shared tokens into the trunk.

        Stable cuts sit at pre-token starts (`pretok.stable_cuts`). Inside one
        long pre-token, a run of letters, the cut follows the last position that
        no token can lie across (`trie.TokenReach`, fed each byte once) and that
        `pretok.letter_cut` accepts: the proof that this is exact is in its
        docstring. So the bytes after the cut stay few however long the run.
        """
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
        if not step:
            return
        delta = self._encode(self.data[self.cut : self.cut + step])
        k = len(delta)
        # every canonical cover starts with delta (that is what a stable cut is): drop the rest
        groups = []
        for g in self.groups:
            if g.seq[:k] == delta:
                groups.append(_Group(g.seq[k:], g.start - step, g.ids, g.valid))
        last = None
        if hasattr(self.core.lm, "extend") and not all(delta[:i] in self._ctx for i in range(k + 1)):
            base, last = self.core.lm.extend(self.trunk, delta)  # one forward, not one row per prefix
            self._ctx = {t: lp for t, lp in self._ctx.items() if t[:k] == delta and len(t) > k}
            self._seq = {t: lp for t, lp in self._seq.items() if t[:k] == delta and len(t) > k}
            self._seq[delta] = base
        else:
            self._ensure([delta])
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


def _needs_probes(x: bytes) -> bool:
    """Whether a continuation can change how the pre-tokenizer splits the end of `x`."""
    if incomplete_tail(x):
        return True
    try:
        tail = x[-8:].decode("utf-8", errors="ignore")
    except Exception:  # pragma: no cover
        return True
    if not tail:
        return True
    last = tail[-1]
    return last.isspace() or last.isdigit() or "'" in tail[-3:] or "’" in tail[-3:] or not last.isprintable()


def _segmentations(core: _Core, x: bytes) -> list[tuple[int, ...]]:
    """Every token sequence whose bytes are exactly `x` (the "all" definition)."""
    out: list[tuple[int, ...]] = []

    def walk(pos: int, seq: tuple[int, ...]) -> None:
        if pos == len(x):
            out.append(seq)
            return
        for length, ids in core.trie.prefix_ids(x[pos:]):
            for v in ids:
                walk(pos + length, seq + (v,))

    walk(0, ())
    return out


def _pick(logprobs: torch.Tensor, u: float, temperature: float = 1.0, top_p: float = 1.0,
          allowed: np.ndarray | None = None) -> int:
    """Inverse-CDF pick over 257 slots after masking, temperature and nucleus filtering."""
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


def _decide(lo: np.ndarray, hi: np.ndarray, u: float, temperature: float) -> int | None:
    """The slot inversion picks for every weight vector between `lo` and `hi`, if unique."""
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


class _LazyMass:
    """Per-slot bounds on the valid mass of a state's covers, tightened on demand.

    Unchecked candidates count in the upper bound only; `refine` checks the
    heaviest unchecked ones (a growing chunk) with the tokenizer.
    """

    def __init__(self, state: "TokenByteState"):
        state._open_fresh(exact=False)
        self.state = state
        self.chunk = 32
        self._load()

    def _load(self) -> None:
        """Arrays over the evaluated groups; a pending sequence counts as mass on every slot."""
        state = self.state
        self.pending = state._pending()
        _, self.gi, self.ki, logm, self.nxt, self.val = state._members(lazy=True)
        end = state._end_logmass() if state._canonical() in state._ctx or not state.eos_ids else -math.inf
        pend = [state._logp(seq) for seq in self.pending]  # parents are evaluated: no model call
        ref = max([float(logm.max()) if len(logm) else -math.inf, end, *pend])
        if ref == -math.inf:
            ref = 0.0
        self.weight = np.exp(logm - ref)
        self.end_weight = math.exp(end - ref)
        self.pending_weight = sum(math.exp(lp - ref) for lp in pend)

    def bounds(self, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        known, unknown = self.val == 1, self.val < 0
        lo = np.bincount(self.nxt[known], weights=self.weight[known], minlength=257)[:257].astype(np.float64)
        lo[EOT] = self.end_weight
        hi = lo + np.bincount(self.nxt[unknown], weights=self.weight[unknown], minlength=257)[:257]
        hi += self.pending_weight
        if allowed is not None:
            lo, hi = np.where(allowed, lo, 0.0), np.where(allowed, hi, 0.0)
        return lo, hi

    def refine(self, data: bytes) -> None:
        """Evaluate pending sequences (one model call), else check the next heaviest
        unchecked candidates; raise when nothing is left to learn (probability 0)."""
        unknown = np.flatnonzero(self.val < 0)
        if self.pending and self.pending_weight >= self.weight[unknown].sum():
            self.state._ensure(self.pending)
            self._load()
            return
        if not len(unknown) and self.pending:
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


class DistributionBounds:
    """Per-slot bounds `p_lo <= p <= p_hi` on a next-byte distribution (numpy, 257 slots).

    Made by `TokenByteState.bounds()`; `DistributionBounds.exact(logprobs)` wraps a
    known distribution (byte-native models) so that callers treat both alike.
    `refine()` tightens them and returns False once they are exact.
    """

    def __init__(self, lazy: "_LazyMass | None", data: bytes = b""):
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
        self.p_lo, self.p_hi = _normalised_bounds(lo, hi, 1.0)
        if not self._lazy.pending and not (self._lazy.val < 0).any():
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


def _normalised_bounds(lo: np.ndarray, hi: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on each slot of `w ** (1/T) / sum(w ** (1/T))` for every `lo <= w <= hi`."""
    scale = max(float(hi.max()), 1e-300)
    a = 1.0 / temperature
    lo_t, hi_t = (lo / scale) ** a, (hi / scale) ** a
    with np.errstate(invalid="ignore", divide="ignore"):
        p_lo = np.where(lo_t > 0, lo_t / (lo_t + hi_t.sum() - hi_t), 0.0)
        p_hi = np.where(hi_t > 0, hi_t / (hi_t + lo_t.sum() - lo_t), 0.0)
    return p_lo, np.minimum(p_hi, 1.0)
