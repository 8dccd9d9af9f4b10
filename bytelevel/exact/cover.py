"""The cover maths: pure functions over token bytes, no model and no state.

A *cover* of the bytes `x` is a token sequence whose bytes start with `x` and
whose last token reaches to or past the end of `x` (see the package
docstring). The states keep covers as `Group`s: a sequence `seq` that spells
the first `start` bytes, and the candidate last tokens `ids`. These functions
open, filter and measure groups; the states decide which candidates are
canonical (with the tokenizer) and what they weigh (with the model).

Token bytes live in a table, one row per token id, padded with 256 past each
token's end, so that "the byte each candidate has at offset k" is one
vectorised lookup. The examples below use the vocabulary
`[b"a", b"ab", b"b", None]` (id 3 stands for no bytes, a special token).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np

from ..trie import TokenTrie
from ..utf8 import incomplete_tail


@dataclass
class Group:
    """Covers `seq + (v,)` for each candidate `v` in `ids`; `bytes(seq)` is the first `start` bytes."""

    seq: tuple[int, ...]
    start: int
    ids: np.ndarray  # int64 candidate last tokens
    valid: np.ndarray  # int8: 1 canonical, 0 not, -1 not checked yet


class Members(NamedTuple):
    """The candidates of several groups, flattened (one entry per candidate)."""

    group: np.ndarray  # int64 index of its group
    index: np.ndarray  # int64 index inside that group
    logmass: np.ndarray  # float64 log P(seq + (v,)) relative to the trunk
    next_byte: np.ndarray  # int64 the byte it puts after the prefix (256: it ends there)
    valid: np.ndarray  # int8 as `Group.valid`


class TokenTables(NamedTuple):
    table: np.ndarray  # (V, max_len + 1) uint16 token bytes, 256 past the end (and for specials)
    lengths: np.ndarray  # (V,) int64 byte length of each token, 0 for specials
    probes: list[bytes]  # one token's bytes per distinct `probe_key`


def token_tables(pieces: Sequence[bytes | None], vocab_size: int) -> TokenTables:
    """The byte table, the lengths and the pre-tokenizer probes of a vocabulary.

    `vocab_size` may exceed `len(pieces)` (a model's padded output rows: no bytes).

    >>> t = token_tables([b"a", b"ab", b"b", None], 5)
    >>> t.table.tolist()
    [[97, 256, 256], [97, 98, 256], [98, 256, 256], [256, 256, 256], [256, 256, 256]]
    >>> t.lengths.tolist(), t.probes
    ([1, 2, 1, 0, 0], [b'a', b'b'])
    """
    max_len = max(len(p) for p in pieces if p)
    table = np.full((vocab_size, max_len + 1), 256, dtype=np.uint16)
    lengths = np.zeros(vocab_size, dtype=np.int64)
    probes: dict[Any, bytes] = {}
    for i, piece in enumerate(pieces):
        if piece:
            table[i, : len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            lengths[i] = len(piece)
            probes.setdefault(probe_key(piece), piece)
    return TokenTables(table, lengths, sorted(probes.values()))


def probe_key(piece: bytes) -> Any:
    """Tokens that start alike for a pre-tokenizer: same ASCII first character, same
    Unicode category of a non-ASCII one, or the same lead byte of a cut character.

    >>> probe_key(b"ab"), probe_key("éa".encode()), probe_key(b"\\xc3")
    ('a', 'Ll', b'\\xc3')
    """
    for size in (1, 2, 3, 4):
        try:
            ch = piece[:size].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return ch if ch.isascii() else unicodedata.category(ch)
    return piece[:1]


def needs_probes(x: bytes) -> bool:
    """Whether a continuation can change how the pre-tokenizer splits the end of `x`.

    After whitespace, a digit, an apostrophe or a character cut mid-way it can
    (look-ahead rules, contractions); after a plain letter it cannot.

    >>> needs_probes(b"ab"), needs_probes(b"ab "), needs_probes(b"don'"), needs_probes(b"\\xc3")
    (False, True, True, True)
    """
    if incomplete_tail(x):
        return True
    tail = x[-8:].decode("utf-8", errors="ignore")
    if not tail:
        return True
    last = tail[-1]
    return last.isspace() or last.isdigit() or "'" in tail[-3:] or "’" in tail[-3:] or not last.isprintable()


def segmentations(trie: TokenTrie, x: bytes) -> list[tuple[int, ...]]:
    """Every token sequence whose bytes are exactly `x` (the "all tokenizations" definition).

    >>> trie = TokenTrie([b"a", b"ab", b"b", None])
    >>> segmentations(trie, b"ab"), segmentations(trie, b"")
    ([(0, 2), (1,)], [()])
    """
    out: list[tuple[int, ...]] = []

    def walk(pos: int, seq: tuple[int, ...]) -> None:
        if pos == len(x):
            out.append(seq)
            return
        for length, ids in trie.prefix_ids(x[pos:]):
            for v in ids:
                walk(pos + length, seq + (v,))

    walk(0, ())
    return out


def last_token_candidates(trie: TokenTrie, lengths: np.ndarray, x: bytes) -> list[tuple[int, np.ndarray]]:
    """`(j, ids)`: the tokens that can start at byte `j` of `x` and run past its end.

    Those are the possible last tokens of a cover of `x` (a token that ends
    exactly at the end belongs to a spelling of `x`, counted apart). Starts
    ascend, ids are in byte order; starts with no token are left out.

    >>> trie = TokenTrie([b"a", b"ab", b"b", None])
    >>> [(j, ids.tolist()) for j, ids in last_token_candidates(trie, np.array([1, 2, 1, 0]), b"a")]
    [(0, [1])]
    """
    out = []
    for j in range(max(0, len(x) - trie.max_len + 1), len(x)):
        ids = np.array(trie.ids_with_prefix(x[j:]), dtype=np.int64)
        ids = ids[lengths[ids] > len(x) - j]
        if len(ids):
            out.append((j, ids))
    return out


def spelled_length(seq: Sequence[int], lengths: np.ndarray) -> int:
    """Bytes spelled by the token sequence `seq`.

    >>> spelled_length((0, 1), np.array([1, 2, 1, 0]))
    3
    """
    return sum(int(lengths[t]) for t in seq)


def ends_with_at(enc: Sequence[int], token: int, start: int, lengths: np.ndarray) -> bool:
    """Whether the encoding `enc` ends with `token` and that token starts at byte `start`.

    A candidate `v` after `x[:start]` is canonical exactly when the tokenizer's
    encoding of `x[:start] + bytes(v)` passes this test (its sequence is then `enc[:-1]`).

    >>> lengths = np.array([1, 2, 1, 0])
    >>> ends_with_at((0, 2), 2, 1, lengths), ends_with_at((1,), 2, 1, lengths)
    (True, False)
    """
    return bool(enc) and enc[-1] == token and spelled_length(enc[:-1], lengths) == start


def prefix_spelling(enc: Sequence[int], lengths: np.ndarray, pos: int) -> tuple[int, ...] | None:
    """The first tokens of `enc` that spell exactly `pos` bytes (None when a token lies across `pos`).

    >>> lengths = np.array([1, 2, 1, 0])
    >>> prefix_spelling((0, 1), lengths, 1), prefix_spelling((1, 0), lengths, 1)
    ((0,), None)
    """
    total = 0
    for k, t in enumerate(enc):
        if total == pos:
            return tuple(enc[:k])
        total += int(lengths[t])
        if total > pos:
            return None
    return None


def advance_groups(groups: list[Group], table: np.ndarray, lengths: np.ndarray, n: int, byte: int) -> list[Group]:
    """The groups after byte `byte` is read at position `n`: candidates that have it there and go on.

    A candidate that ends exactly at `n + 1` stops being a cover of the longer
    prefix (the prefix's own spellings are counted apart); empty groups go.

    >>> t = token_tables([b"a", b"ab", b"b", None], 4)
    >>> g = Group((), 0, np.array([0, 1]), np.array([1, -1], dtype=np.int8))
    >>> [(h.ids.tolist(), h.valid.tolist()) for h in advance_groups([g], t.table, t.lengths, 0, 97)]
    [([1], [-1])]
    """
    out = []
    for g in groups:
        keep = (table[g.ids, n - g.start] == byte) & (lengths[g.ids] > n + 1 - g.start)
        if keep.any():
            out.append(Group(g.seq, g.start, g.ids[keep], g.valid[keep]))
    return out


def draft_laws(table: np.ndarray, lengths: np.ndarray, ids: np.ndarray, offset: np.ndarray,
               weights: np.ndarray, draft: bytes) -> list[np.ndarray]:
    """For each j, the (257,) law of `draft[j]` among candidates that agree with `draft[:j]` and go on.

    `offset[i]` is how many bytes of candidate `ids[i]` are already read, `weights`
    their (unnormalised) weights: the law a speculative draft is corrected against.

    >>> t = token_tables([b"a", b"ab", b"b", None], 4)
    >>> laws = draft_laws(t.table, t.lengths, np.array([0, 1]), np.array([0, 0]), np.array([1.0, 3.0]), b"ab")
    >>> float(laws[0][97]), float(laws[1][98])
    (1.0, 1.0)
    """
    rest = lengths[ids] - offset  # bytes each candidate has left
    laws, alive = [], np.ones(len(weights), dtype=bool)
    for j in range(len(draft)):
        alive &= rest > j
        at = table[ids, np.minimum(offset + j, table.shape[1] - 1)].astype(np.int64)
        law = np.bincount(at[alive], weights=weights[alive], minlength=257)[:257]
        laws.append(law / law.sum())
        alive &= at == draft[j]
    return laws
