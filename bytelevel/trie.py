"""Byte trie over a vocabulary: which tokens extend a byte prefix, which are prefixes of it.

Exact next-byte probabilities sum model probabilities over the tokens whose
bytes extend a prefix. Sorting the token byte strings makes every trie node a
*contiguous range* of that order, so a node's subtree is two integers: a sum
over a subtree is one slice of a sorted tensor, and the tokens under every
child of a node split its range into consecutive runs. No normalizers, no
special tokens (they stand for no bytes). Duplicate byte strings keep all ids.

Walking down one byte narrows the range with a binary search inside it, so a
look-up of a prefix of length L costs O(L log |V|) comparisons of one byte.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Node:
    """A trie node: tokens `order[lo:hi]` all start with the node's `depth` bytes."""

    depth: int
    lo: int
    hi: int

    @property
    def empty(self) -> bool:
        return self.lo >= self.hi


class TokenTrie:
    """Implicit trie over `pieces` (bytes or None per token id).

    Example: pieces `[b"a", b"ab", None, b"b"]` sort to `a, ab, b`;
    `ids_with_prefix(b"a")` -> `[0, 1]`, `prefix_ids(b"abc")` -> `[(1, [0]), (2, [1])]`.
    """

    def __init__(self, pieces: Sequence[bytes | None]):
        items = sorted((p, i) for i, p in enumerate(pieces) if p)
        self.sorted_bytes: list[bytes] = [p for p, _ in items]
        self.order = np.array([i for _, i in items], dtype=np.int64)  # token ids in byte order
        self.by_bytes: dict[bytes, list[int]] = {}
        for p, i in items:
            self.by_bytes.setdefault(p, []).append(i)
        self.max_len = max((len(p) for p in self.sorted_bytes), default=0)
        self.root = Node(0, 0, len(items))
        # position of each token id in the byte order (-1 for specials)
        self.position = np.full(len(pieces), -1, dtype=np.int64)
        self.position[self.order] = np.arange(len(items))

    def child(self, node: Node, byte: int) -> Node:
        """The node one byte deeper; empty when no token continues with `byte`."""
        if node.empty:
            return Node(node.depth + 1, 0, 0)
        keys = self.sorted_bytes
        stem = keys[node.lo][: node.depth]  # every key in the range starts with it
        lo = bisect_left(keys, stem + bytes([byte]), node.lo, node.hi)
        hi = bisect_left(keys, stem + bytes([byte + 1]), lo, node.hi) if byte < 255 else node.hi
        return Node(node.depth + 1, lo, hi)

    def find(self, prefix: bytes) -> Node:
        """The node of `prefix` (empty if no token starts with it)."""
        node = self.root
        for byte in prefix:
            node = self.child(node, byte)
            if node.empty:
                break
        return node

    def ids_with_prefix(self, prefix: bytes) -> list[int]:
        """All token ids whose bytes start with `prefix` (in byte order)."""
        node = self.find(prefix)
        return self.order[node.lo : node.hi].tolist()

    def ids_ending_at(self, node: Node) -> list[int]:
        """Token ids whose bytes are exactly the node's prefix."""
        if node.empty:
            return []
        return self.by_bytes.get(self.sorted_bytes[node.lo][: node.depth], []) if node.depth else []

    def prefix_ids(self, data: bytes) -> list[tuple[int, list[int]]]:
        """`(length, ids)` for every token whose bytes are a prefix of `data`, shortest first."""
        out = []
        for length in range(1, min(len(data), self.max_len) + 1):
            ids = self.by_bytes.get(data[:length])
            if ids:
                out.append((length, ids))
        return out


class TokenReach:
    """Which byte positions of a growing string no token can lie across.

    Follows, for every start `s >= base`, the tokens that could begin at `s`
    and agree with the bytes seen so far. A start is *open* while some such
    token runs past the known end; once closed, its *reach* (the end of the
    longest token that fits there exactly) is final, because later bytes only
    remove candidates. A position `c` is *sealed* when every start in
    `[base, c)` is closed and reaches no further than `c`: then no token, in
    any tokenization of any continuation, starts before `c` and ends after it.
    Each pushed byte costs one trie step per open start (at most `max_len`).

    Example: pieces `[b"a", b"b", b"ab"]`, bytes `b"abb"`: the start at 0
    reaches 2 (`ab`), so 1 is not sealed; 2 is (the start at 1 reaches 2).
    """

    def __init__(self, trie: "TokenTrie", base: int = 0):
        self.trie = trie
        self.base = self.end = self._folded = self._far = base
        self._open: list[tuple[int, Node]] = []  # (start, node of the bytes from start to end)
        self._reach: dict[int, int] = {}  # start -> end of its longest exact token, until folded
        self._reported = base  # sealed positions up to here were returned already

    def push(self, data: bytes) -> None:
        """Append bytes to the string."""
        trie = self.trie
        for byte in data:
            self._open.append((self.end, trie.root))
            self._reach[self.end] = self.end
            self.end += 1
            still = []
            for start, node in self._open:
                node = trie.child(node, byte)
                if node.empty:
                    continue
                if trie.ids_ending_at(node):
                    self._reach[start] = self.end
                still.append((start, node))
            self._open = still

    def rebase(self, base: int) -> None:
        """Forget the starts before `base` (a boundary every tokenization has, e.g. a stable cut).

        Past the pushed bytes, start afresh there: the bytes before it are never pushed."""
        if base <= self.base:
            return
        if base >= self.end:
            self.__init__(self.trie, base)
            return
        self.base = base
        self._open = [(s, node) for s, node in self._open if s >= base]
        for s in range(self._folded, base):
            self._reach.pop(s, None)
        self._folded = max(self._folded, base)
        self._far = max(self._far, base) if self._folded > base else base
        self._reported = max(self._reported, base)

    def sealed(self) -> list[int]:
        """Sealed positions in `(base, end)` not returned before, ascending."""
        limit = self._open[0][0] if self._open else self.end
        out = []
        while self._folded < limit:
            s = self._folded
            if self._far <= s and s > self._reported:
                out.append(s)
            self._far = max(self._far, self._reach.pop(s))
            self._folded += 1
        if self._far <= limit < self.end and limit > self._reported:
            out.append(limit)
        if out:
            self._reported = out[-1]
        return out
