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

import functools
from typing import Sequence

from .utf8 import incomplete_tail, utf8_runs
from .readers import bytes_to_unicode, spec_parts
from .vocab import ByteVocab


def pretoken_starts(vocab: ByteVocab, text: str) -> list[int]:
    """Character offsets where the tokenizer's pre-tokenizer starts a new piece."""
    backend = vocab.backend
    if vocab.family == "tiktoken":
        import regex

        return [m.start() for m in regex.finditer(backend._pat_str, text)]
    if vocab.engine == "sentencepiece":
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
        backend = vocab.backend
        if vocab.family == "tiktoken":
            encoded = backend.encode_ordinary_batch(texts)
        elif vocab.engine == "sentencepiece":
            encoded = backend.encode(texts)
        else:
            encoded = [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        for i, ids in zip(where, encoded):
            out[i] = list(ids)
    return out  # type: ignore[return-value]


# -- the canonical encoding used by the exact byte model --------------------------------------


def canonical_encode(vocab: ByteVocab, data: bytes) -> list[int]:
    """The canonical token sequence of `data`: the definition `exact/` sums over.

    For complete UTF-8 this is `vocab.encode_raw(data)`. A tokenizer reads
    characters, so bytes that end *inside* a character have no encoding of their
    own; yet byte-level BPE and tiktoken models do emit tokens that end mid-
    character (`Ġæ` then `Ŀ±` for " 東"), and a prefix cut there must keep them.
    So an incomplete trailing character is glued to the pre-token it would join:
    the pre-tokenizer runs on the text with a stand-in character of the same
    class (letter, digit, space, other: the majority among the characters that
    start with these bytes), and the last pre-token is BPE-encoded with the real
    trailing bytes in place of the stand-in. Other families (SentencePiece byte
    fallback) spell such bytes with single-byte tokens, as `encode_raw` does.
    """
    tail = incomplete_tail(data)
    if not tail or vocab.family not in ("byte_bpe", "tiktoken"):
        return vocab.encode_raw(data)
    head, partial = data[:-tail], data[-tail:]
    runs = utf8_runs(head)
    text = runs[-1][0] if runs and runs[-1][0] is not None else ""
    before = head[: len(head) - len(text.encode("utf-8"))]
    glued = _glue(vocab, text, partial)
    if glued is None:
        return vocab.encode_raw(data)
    return (vocab.encode_raw(before) if before else []) + glued


def _glue(vocab: ByteVocab, text: str, partial: bytes) -> list[int] | None:
    probe = text + stand_in(partial)
    backend = vocab.backend
    if vocab.family == "tiktoken":
        import regex

        chunks = [m.group().encode("utf-8") for m in regex.finditer(backend._pat_str, probe)]
        chunks[-1] = chunks[-1][: -len(probe[-1].encode("utf-8"))] + partial
        return [t for chunk in chunks if chunk for t in backend._encode_single_piece(chunk)]
    if backend.normalizer is not None or backend.pre_tokenizer is None:
        return None
    to_unicode = bytes_to_unicode()
    spans = [span for _, span in backend.pre_tokenizer.pre_tokenize_str(probe)]
    ids: list[int] = []
    for i, (lo, hi) in enumerate(spans):
        raw = probe[lo:hi].encode("utf-8")
        if i == len(spans) - 1:
            raw = raw[: -len(probe[-1].encode("utf-8"))] + partial
        if raw:
            ids += [t.id for t in backend.model.tokenize("".join(to_unicode[b] for b in raw))]
    return ids


_STAND_INS = {"L": "a", "N": "0", "Z": " ", "O": "\u00b7"}


@functools.lru_cache(maxsize=4096)
def stand_in(partial: bytes) -> str:
    """A character of the majority class among those whose UTF-8 starts with `partial`."""
    import unicodedata

    lead = partial[0]
    size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    lo = int.from_bytes(partial + b"\x80" * (size - len(partial)), "big")
    hi = int.from_bytes(partial + b"\xbf" * (size - len(partial)), "big")
    counts = {"L": 0, "N": 0, "Z": 0, "O": 0}
    first: dict[str, str] = {}
    step = max(1, (hi - lo) // 4096)
    for code in range(lo, hi + 1, step):
        try:
            ch = code.to_bytes(size, "big").decode("utf-8")
        except UnicodeDecodeError:  # not a continuation pattern (skipped values)
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cn", "Cs"):
            continue
        cls = "Z" if ch.isspace() else cat[0] if cat[0] in "LN" else "O"
        counts[cls] += 1
        first.setdefault(cls, ch)
    best = max(counts, key=lambda c: counts[c])
    return first.get(best, _STAND_INS[best]) if counts[best] else "\ufffd"


# -- cuts inside a run of letters ----------------------------------------------------------------

_RUN_MODELS = ("BPE", "Unigram")
# a Sequence is judged by its parts (`readers.spec_parts` flattens it)
_RUN_PRETOKENIZERS = ("ByteLevel", "Metaspace", "Split", "Digits", "Punctuation", "WhitespaceSplit")


@functools.lru_cache(maxsize=64)
def _hf_allows_letter_cuts(spec_json: str) -> bool:
    import json

    spec = json.loads(spec_json)
    model = spec.get("model") or {}
    if model.get("type") not in _RUN_MODELS or model.get("dropout") or model.get("end_of_word_suffix") or \
            model.get("continuing_subword_prefix"):
        return False
    return all(part.get("type") in _RUN_PRETOKENIZERS for part in spec_parts(spec.get("pre_tokenizer")))


def letter_cuts_supported(vocab: ByteVocab) -> bool:
    """Whether `letter_cut` positions are exact cuts for this tokenizer (see `letter_cut`).

    The segmentation must be one that no piece lying across a position can
    change: BPE (Hugging Face merges, tiktoken, SentencePiece) or Unigram, with
    no dropout and no word-end or continuation markers, behind the regex or
    whitespace pre-tokenizers of the families read by `ByteVocab`.
    """
    if vocab.family == "tiktoken":
        return True
    backend = vocab.backend
    if vocab.engine == "sentencepiece":
        return True  # sentencepiece.SentencePieceProcessor: BPE or Unigram, whitespace/script splits
    if vocab.family in ("byte_bpe", "sentencepiece") and vocab.engine == "tokenizers":
        return _hf_allows_letter_cuts(backend.to_str())
    return False


def _last_chars(data: bytes, end: int, count: int) -> str:
    """The last `count` complete characters of `data[:end]` (fewer if they are not all there)."""
    window = data[max(0, end - 4 * count) : end]
    for k in range(len(window)):
        try:
            return window[k:].decode("utf-8")[-count:]
        except UnicodeDecodeError:
            continue
    return ""


def letter_cut(data: bytes, c: int) -> bool:
    """Whether byte offset `c` of `data` sits after three letters and before a complete letter.

    Such a cut is exact when no token can lie across `c` (`trie.TokenReach`
    says it is *sealed*, from the bytes of `data`) and the tokenizer passes
    `letter_cuts_supported`: when `data` starts at a cut (the text's start or
    an earlier cut), then for every `w` that is `data` plus any continuation,
    or a prefix of `data` longer than `c`, `canonical_encode(w)` is
    `canonical_encode(data[:c]) + canonical_encode(w[c:])`. Why:

    1. Pre-tokens. Pre-tokenizing `u + v` (`u` the bytes from the cut to `c`,
       so it ends in three letters or is made of letters only, and `v`
       starting with a letter) gives the pre-tokens of `u` then those of `v`,
       except that the last of `u` and the first of `v` may be one pre-token.
       This is an assumption about the pre-tokenizers, true of the ones
       `ByteVocab` reads: in the GPT-2, cl100k/Llama-3, Qwen2 and o200k
       patterns a letter run is taken by a greedy letters item that every
       further letter extends (o200k also splits lower-to-upper case, which
       depends on those two letters only), the item's left context is at most
       one non-letter, and contractions are an apostrophe plus at most two
       letters (hence three letters, not one, before `c`); SentencePiece and
       Metaspace split at spaces (and scripts), never inside letters.
    2. Inside the joined pre-token, no vocabulary piece lies across `c`, so
       the segmentation is that of each side: a BPE merge makes a piece, so no
       merge ever joins symbols from both sides, and each side's merges,
       chosen by rank then position among that side's pairs, happen as they
       would alone; the whole-word shortcuts (Hugging Face `ignore_merges`,
       tiktoken's whole-piece look-up) would be a piece across `c`; Unigram's
       best path passes through `c`, so it is the best path to `c` followed by
       the best path from it; byte fallback spells one character at a time.
    3. An incomplete last character is pre-tokenized as a stand-in character
       (see `canonical_encode`): 1 holds for that text, 2 for the real bytes.

    The tests check the equality on random letter runs and continuations for
    every tokenizer family, and the exact model against brute force.
    """
    if not 0 < c < len(data) or 0x80 <= data[c] < 0xC0:
        return False
    after = data[c : c + 4]
    size = 1 if after[0] < 0x80 else 2 if after[0] < 0xE0 else 3 if after[0] < 0xF0 else 4
    try:
        nxt = after[:size].decode("utf-8")
    except UnicodeDecodeError:
        return False
    before = _last_chars(data, c, 3)
    return len(before) == 3 and nxt.isalpha() and before.isalpha()
