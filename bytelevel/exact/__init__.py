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

The package, one job per module:

- `protocols`: `EOT`, `ByteModel`, `ByteState`, `ExactByteState` (what the
  exact states add) and `NextTokenScorer` (what a token LM must answer);
- `hf`: `HFTokenLM`, a Hugging Face causal LM with a trunk KV cache and
  packed token trees;
- `cover`: the cover maths as pure functions (`Group`, candidates, spellings);
- `bounds`: certified bounds and the decisions they allow (`pick`, `decide`,
  `DistributionBounds`);
- `base`: `CoverState`, what both definitions share, and `LazyMass`;
- `canonical`: `TokenByteState`, the production state (canonical covers, cut);
- `reference`: `AllTokenizationsState`, the `tokenizations="all"` reference;
- `model`: `TokenByteModel`, which builds the tables and starts states.

What it does not do: normalisers (a lossy tokenizer is refused), special tokens
inside the text (they are bytes here), and beam pruning (it is exact).
"""

from .bounds import DistributionBounds, decide, pick
from .canonical import TokenByteState
from .hf import HFTokenLM
from .model import TokenByteModel
from .protocols import EOT, ByteModel, ByteState, ExactByteState, NextTokenScorer
from .reference import AllTokenizationsState

__all__ = ["EOT", "AllTokenizationsState", "ByteModel", "ByteState", "DistributionBounds", "ExactByteState",
           "HFTokenLM", "NextTokenScorer", "TokenByteModel", "TokenByteState", "decide", "pick"]
