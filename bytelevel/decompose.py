"""A new token's bytes as ids of the old (base) tokenizer: what every embedding transfer starts from.

FVT, TokenAdapt's local heuristic and the ZeTT hypernetwork all read a new
token through its decomposition under the tokenizer the model was trained
with. The old tokenizer's own byte-level rules decide the split (so a token
that cuts a UTF-8 character still splits, into byte tokens); where those rules
give ids that have no embedding row (an added token past the matrix, an id
the tokenizer never produces), the bytes are split longest-first over the
tokens that do have rows. A byte no old token spells is left out.

Lives in `bytelevel` because it is byte maths over a vocabulary and both
`transplant` (its heuristics) and `hypernet` use it.
"""
from __future__ import annotations

from .trie import TokenTrie
from .utf8 import utf8_runs
from .vocab import ByteVocab


class Decomposer:
    """`decomposer(piece) -> [old ids]`, cached per piece (sampled vocabularies repeat from batch to batch).

    `rows`: how many ids have embedding rows (ids >= rows are never returned).
    Example: GPT-2 as the old tokenizer, `decomposer(b" tokenshift")` -> the ids
    of `" token"`, `"shift"`; the first two bytes of "€" -> two byte-token ids.
    """

    def __init__(self, old: ByteVocab, rows: int, cache_size: int = 1 << 20):
        self.old, self.rows, self.cache_size = old, rows, cache_size
        self._trie: TokenTrie | None = None
        self._cache: dict[bytes, list[int]] = {}

    def __call__(self, piece: bytes) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = self._split(piece)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[piece] = ids
        return list(ids)

    def _split(self, piece: bytes) -> list[int]:
        ids: list[int] = []
        for text, raw in utf8_runs(piece):
            if text is not None:
                ids += self.old.encode_raw(raw, strict=False)
            elif self.old.byte_token(raw[0]) is not None:
                ids.append(self.old.byte_token(raw[0]))
        if all(self._usable(i) for i in ids):
            return ids
        return self._longest_first(piece)  # the tokenizer made ids without rows: split by what has rows

    def _usable(self, i: int) -> bool:
        return i < self.rows and bool(self.old.pieces[i])

    def _longest_first(self, piece: bytes) -> list[int]:
        if self._trie is None:
            self._trie = TokenTrie([p if i < self.rows else None for i, p in enumerate(self.old.pieces)])
        ids, pos = [], 0
        while pos < len(piece):
            found = self._trie.prefix_ids(piece[pos:])
            if not found:
                pos += 1
                continue
            length, group = max(found, key=lambda f: f[0])
            ids.append(min(group))
            pos += length
        return ids
