"""TokenTrie agrees with a linear scan over the vocabulary, on random vocabularies, a tiny BPE and GPT-2."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel.trie import TokenTrie

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# a small alphabet with the edge bytes (0x00, 0xff: the end of the binary search range) makes
# shared prefixes, duplicates and 0xff-runs likely
SMALL = st.binary(max_size=4).map(lambda b: bytes(x % 4 for x in b).translate(bytes.maketrans(b"\x00\x01\x02\x03", b"\x00a\xfe\xff")))
piece_lists = st.lists(st.one_of(st.none(), SMALL), max_size=24)


def linear_with_prefix(pieces, prefix: bytes) -> list[int]:
    return sorted((p, i) for i, p in enumerate(pieces) if p and p.startswith(prefix))


def linear_prefix_ids(pieces, data: bytes) -> list[tuple[int, list[int]]]:
    found: dict[int, list[int]] = {}
    for i, p in enumerate(pieces):
        if p and data.startswith(p):
            found.setdefault(len(p), []).append(i)
    return sorted(found.items())


def check(trie: TokenTrie, pieces, prefix: bytes) -> None:
    expected = linear_with_prefix(pieces, prefix)
    assert trie.ids_with_prefix(prefix) == [i for _, i in expected]  # in byte order, ties by id
    assert trie.prefix_ids(prefix) == linear_prefix_ids(pieces, prefix)
    node = trie.find(prefix)
    assert node.empty == (not expected)
    assert trie.ids_ending_at(node) == ([] if not prefix else [i for i, p in enumerate(pieces) if p == prefix])
    if not node.empty:
        assert node.depth == len(prefix)
        for byte in {0, 255, *(p[len(prefix)] for p, _ in expected if len(p) > len(prefix))}:
            child = trie.child(node, byte)
            got = trie.order[child.lo : child.hi].tolist() if not child.empty else []
            assert got == [i for _, i in linear_with_prefix(pieces, prefix + bytes([byte]))]


@PROPERTY
@given(pieces=piece_lists, prefixes=st.lists(SMALL, max_size=6))
def test_random_vocab_matches_linear_scan(pieces, prefixes):
    trie = TokenTrie(pieces)
    real = [p for p in pieces if p]
    assert trie.max_len == max(map(len, real), default=0)
    for prefix in [b"", *prefixes, *(p[:k] for p in real for k in range(len(p) + 1))]:
        check(trie, pieces, prefix)
    for i, p in enumerate(pieces):  # the byte-order position of every id
        if p:
            assert trie.order[trie.position[i]] == i
        else:
            assert trie.position[i] == -1


def test_docstring_example():
    trie = TokenTrie([b"a", b"ab", None, b"b"])
    assert trie.ids_with_prefix(b"a") == [0, 1]
    assert trie.prefix_ids(b"abc") == [(1, [0]), (2, [1])]
    assert trie.ids_with_prefix(b"c") == [] and trie.find(b"c").empty


def test_empty_trie():
    trie = TokenTrie([None, None])
    assert trie.ids_with_prefix(b"") == [] and trie.prefix_ids(b"abc") == [] and trie.max_len == 0


@pytest.fixture(scope="module")
def tiny(get_vocab):
    pieces = get_vocab("tiny_byte_bpe").pieces
    return pieces, TokenTrie(pieces)


@pytest.fixture(scope="module")
def gpt2(get_vocab):
    pieces = get_vocab("gpt2").pieces
    return pieces, TokenTrie(pieces)


def token_cuts(pieces):
    """Prefixes of real tokens (a random token cut at a random length), plus random continuations."""
    ids = [i for i, p in enumerate(pieces) if p]
    return st.tuples(st.sampled_from(ids), st.integers(0, 8), st.binary(max_size=3)).map(
        lambda t: pieces[t[0]][: t[1]] + t[2] if t[2] and t[1] % 2 else pieces[t[0]][: t[1]]
    )


@given(data=st.data())
@PROPERTY
def test_tiny_bpe_matches_linear_scan(tiny, data):
    pieces, trie = tiny
    prefix = data.draw(st.one_of(token_cuts(pieces), st.binary(max_size=4)))
    check(trie, pieces, prefix)


@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_gpt2_matches_linear_scan(gpt2, data):
    pieces, trie = gpt2
    prefix = data.draw(st.one_of(token_cuts(pieces), st.binary(max_size=3)))
    expected = linear_with_prefix(pieces, prefix)
    assert trie.ids_with_prefix(prefix) == [i for _, i in expected]
    assert trie.prefix_ids(prefix + b" the") == linear_prefix_ids(pieces, prefix + b" the")


def test_gpt2_known_look_ups(gpt2, get_tokenizer):
    pieces, trie = gpt2
    vocab = get_tokenizer("gpt2").get_vocab()
    the = vocab["Ġthe"]  # " the"
    assert the in trie.ids_with_prefix(b" th")
    assert (4, [the]) in trie.prefix_ids(b" the cat")
    assert trie.ids_ending_at(trie.find(b" the")) == [the]
    assert len(trie.ids_with_prefix(b"")) == sum(p is not None for p in pieces)
