"""Where a byte string can be cut so that what follows never changes what precedes.

Exact byte probabilities sum over every canonical token sequence that covers a
prefix. Summing over all of them from the first byte on would cost more with
every byte; but tokenizers split text into pre-tokens (words, number groups,
whitespace runs) and no token crosses a pre-token boundary. A *stable cut* is a
boundary that no continuation of the text can move: then every canonical
encoding of every continuation starts with the encoding of the bytes before
the cut (the "trunk"), and only the bytes after it need enumerating.

Which boundaries are stable is the pitfall list of the anchors (ByteSampler's
issue #1): whitespace lookahead (`\\s+(?!\\S)` splits `"  a"` as `" |" a"`),
newline runs that absorb earlier whitespace, right-aligned digit groups,
contractions. The rule used here is conservative: a cut sits at a pre-token
start whose previous character is not whitespace, not between two digits, not
next to an apostrophe, and never inside a character that is still incomplete.
The brute-force tests check the rule against full enumeration, which does not
use cuts at all.
"""
from __future__ import annotations

from typing import Sequence

from .utf8 import incomplete_tail, utf8_runs
from .vocab import ByteVocab


def pretoken_starts(vocab: ByteVocab, text: str) -> list[int]:
    """Character offsets where the tokenizer's pre-tokenizer starts a new piece."""
    backend = vocab._backend
    if vocab.family == "tiktoken":
        import regex

        return [m.start() for m in regex.finditer(backend._pat_str, text)]
    if vocab.family == "sentencepiece" and not hasattr(backend, "pre_tokenizer"):
        # SentencePiece splits before each whitespace run (split_by_whitespace)
        return [i for i, ch in enumerate(text) if ch == " " and (i == 0 or text[i - 1] != " ")]
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
    if backend.pre_tokenizer is None:
        return [0]
    if len(normalized) != len(text):  # offsets would not map back to the user's characters
        return []
    return [start for _, (start, _end) in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def stable_cuts(vocab: ByteVocab, data: bytes) -> list[int]:
    """Byte offsets in `data` that are stable cuts (see the module docstring), ascending."""
    usable = data[: len(data) - incomplete_tail(data)]
    cuts: list[int] = []
    offset = 0
    for text, raw in utf8_runs(usable):
        if text is None:
            offset += len(raw)
            continue
        char_to_byte = [0]
        for ch in text:
            char_to_byte.append(char_to_byte[-1] + len(ch.encode("utf-8")))
        for start in pretoken_starts(vocab, text):
            if start == 0 or start >= len(text):
                continue
            before, after = text[start - 1], text[start]
            if before.isspace() or (before.isdigit() and after.isdigit()) or "'" in (before, after) or "’" in (
                before,
                after,
            ):
                continue
            cuts.append(offset + char_to_byte[start])
        offset += len(raw)
    return [c for c in cuts if c < len(data)]


def encode_many(vocab: ByteVocab, datas: Sequence[bytes]) -> list[list[int]]:
    """`vocab.encode_raw` on many byte strings, batched through the tokenizer when it can be."""
    texts: list[str] = []
    where: list[int] = []
    out: list[list[int] | None] = [None] * len(datas)
    for i, data in enumerate(datas):
        try:
            texts.append(data.decode("utf-8"))
            where.append(i)
        except UnicodeDecodeError:
            out[i] = vocab.encode_raw(data)
    if texts:
        backend = vocab._backend
        if vocab.family == "tiktoken":
            encoded = backend.encode_ordinary_batch(texts)
        elif vocab.family == "sentencepiece" and not hasattr(backend, "encode_batch"):
            encoded = backend.encode(texts)
        else:
            encoded = [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        for i, ids in zip(where, encoded):
            out[i] = list(ids)
    return out  # type: ignore[return-value]
