"""Scoring inside one long pre-token: the cut follows the text, the work per byte stays bounded, results do not move.

Regression for issue 20, defect 5: on a run of one letter the cut never moved
(no pre-token starts inside a run), so every byte re-encoded the whole run.
The cut now also stops at *sealed letter cuts* (`trie.TokenReach`,
`pretok.letter_cut`); these tests check the pieces against brute force, the
claim the cut rests on against the real tokenizers, and the exact model with
the rule against the model without it and against the brute-force oracle.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import Oracle
from tiny import byte_bpe, sp_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab, score_bytes
from tokenshift.bytelevel import exact as exact_module
from tokenshift.bytelevel.exact import base as exact_base  # where the states call the encoder
from tokenshift.bytelevel.exact import TokenByteModel
from tokenshift.bytelevel.pretok import canonical_encode, letter_cut, letter_cuts_supported
from tokenshift.bytelevel.trie import TokenReach, TokenTrie

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


# -- TokenReach against brute force ------------------------------------------------------------------

SMALL = st.binary(min_size=1, max_size=3).map(lambda b: bytes(b"ab\xc3"[x % 3] for x in b))


def brute_sealed(pieces, data: bytes) -> set[int]:
    """Positions c in (0, len) such that no piece agreeing with `data` starts before c and ends after it."""
    out = set()
    for c in range(1, len(data)):
        crossing = False
        for s in range(c):
            for p in pieces:
                if not p or s + len(p) <= c:
                    continue
                known = min(len(p), len(data) - s)
                if p[:known] == data[s : s + known]:
                    crossing = True
        if not crossing:
            out.add(c)
    return out


@PROPERTY
@given(pieces=st.lists(SMALL, min_size=1, max_size=12), data=st.binary(max_size=14).map(
    lambda b: bytes(b"ab\xc3"[x % 3] for x in b)), chunks=st.lists(st.integers(1, 4), max_size=14))
def test_reach_seals_exactly_the_positions_no_piece_can_cross(pieces, data, chunks):
    reach = TokenReach(TokenTrie(pieces))
    got: list[int] = []
    pos = 0
    for size in chunks + [len(data)]:
        reach.push(data[pos : pos + size])
        pos = min(len(data), pos + size)
        got += reach.sealed()
    assert got == sorted(set(got))  # each position once, ascending
    assert set(got) == brute_sealed(pieces, data)


def test_reach_example_and_rebase():
    reach = TokenReach(TokenTrie([b"a", b"b", b"ab"]))
    reach.push(b"abb")
    assert reach.sealed() == [2]
    reach.rebase(2)  # a boundary every tokenization has: starts before it no longer count
    reach.push(b"ab")
    assert reach.sealed() == [3]  # 4 is crossed by "ab"; 5 is the end
    reach.rebase(9)  # past the pushed bytes: afresh from there
    assert reach.end == 9 and reach.sealed() == []


# -- letter_cut ------------------------------------------------------------------------------------------


def test_letter_cut_needs_three_letters_before_and_a_whole_letter_after():
    om = "\u0f00".encode()
    assert letter_cut(b"xabcd", 4)
    assert letter_cut(b"xabcd", 3)  # "xab|c": three letters before, one after
    assert not letter_cut(b"x'bcd", 4)  # an apostrophe among the three: contractions
    assert not letter_cut(b" abc1", 4) and not letter_cut(b"ab cd", 3)
    assert letter_cut(om * 4, 9) and not letter_cut(om * 4, 8)  # inside a character
    assert not letter_cut(om * 3 + om[:2], 9)  # the letter after is not complete yet
    assert not letter_cut(b"abc", 0) and not letter_cut(b"abc", 3)


# -- the claim the cut rests on, on real and tiny tokenizers -------------------------------------------

TOKENIZERS = ["tiny_byte_bpe", "tiny_sp_bpe", "tiny_sp_unigram", "tiny_hf_sp_bpe", "gpt2", "smollm2", "cl100k",
              "mistral"]
LETTERS = "a\u00e9B\u0436\u0f00\u4e2d\u00dfq"
RUNS = st.text(alphabet=LETTERS, min_size=4, max_size=14)
TAILS = st.text(alphabet=LETTERS + " '1.\n", max_size=5).map(lambda s: s.encode()) | st.binary(max_size=3)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_letter_cuts_split_the_canonical_encoding(name, get_vocab):
    vocab = get_vocab(name)
    assert letter_cuts_supported(vocab)
    trie = TokenTrie(vocab.pieces)
    tried = []

    @PROPERTY
    @given(lead=st.sampled_from(["", "x ", "1.", "don't "]), run=RUNS, tails=st.lists(TAILS, min_size=1, max_size=4))
    def check(lead, run, tails):
        data = (lead + run).encode()
        reach = TokenReach(trie)
        reach.push(data)
        cuts = [c for c in reach.sealed() if letter_cut(data, c)]
        tried.extend(cuts)
        for c in cuts:
            head = canonical_encode(vocab, data[:c])
            for y in tails:
                w = data + y
                try:
                    whole = canonical_encode(vocab, w)
                except ValueError:  # a byte this tokenizer cannot spell (SmolLM2 lacks 21)
                    continue
                assert whole == head + canonical_encode(vocab, w[c:]), (data, c, y)
            for m in range(c + 1, len(data)):  # prefixes of the data past the cut too
                assert canonical_encode(vocab, data[:m]) == head + canonical_encode(vocab, data[c:m]), (data, c, m)

    check()
    assert len(tried) > 20, len(tried)  # the claim was tested, not skipped


# -- the exact model: bounded work, same results --------------------------------------------------------


def _model(vocab_size: int, seed: int = 0):
    """`tiny_llama` with room for a run of hundreds of byte tokens (its default window is 256)."""
    model = tiny_llama(vocab_size, seed)
    model.config.max_position_embeddings = 4096
    return model


@pytest.fixture(scope="module")
def tiny_bpe_model():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    return tok, vocab, _model(len(vocab.pieces))


def _score_counting(bm, text: bytes, monkeypatch) -> tuple[float, int, int]:
    """(bits, bytes handed to the canonical encoder, most bytes after the cut) while scoring `text`."""
    work = {"bytes": 0, "tail": 0}
    real = exact_base.canonical_encode

    def counting(vocab, data):
        work["bytes"] += len(data)
        return real(vocab, data)

    advance = exact_module.TokenByteState.advance

    def watching(state, byte):
        advance(state, byte)
        work["tail"] = max(work["tail"], state.n)

    monkeypatch.setattr(exact_base, "canonical_encode", counting)
    monkeypatch.setattr(exact_module.TokenByteState, "advance", watching)
    try:
        bits = score_bytes(bm, text, progress=False)
    finally:
        monkeypatch.undo()
    return bits, work["bytes"], work["tail"]


def test_long_run_of_one_letter_costs_the_same_per_byte(tiny_bpe_model, monkeypatch):
    """Regression: 'é' x n scored with bounded tokenizer work per byte and a cut that keeps up."""
    tok, vocab, model = tiny_bpe_model
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    short, long = ("x " + "é" * 60).encode(), ("x " + "é" * 240).encode()
    _, work_short, _ = _score_counting(bm, short, monkeypatch)
    bits, work_long, tail = _score_counting(bm, long, monkeypatch)
    assert tail <= 12, tail  # the cut follows the run (before the fix: the whole run, 480 bytes)
    assert work_long / work_short < 5.0, (work_short, work_long)  # 4x the bytes, about 4x the work (was ~14x)
    slow = TokenByteModel(model, tok, dtype=torch.float64)
    slow.core.letter_cuts = False  # the cut only at pre-token starts: the path before the fix
    assert bits == pytest.approx(score_bytes(slow, long, progress=False), abs=1e-9)


@pytest.mark.parametrize("family", ["byte_bpe", "sp_bpe", "sp_unigram"])
def test_distributions_inside_a_run_match_the_path_without_letter_cuts(family):
    tok = byte_bpe() if family == "byte_bpe" else sp_bpe("", "bpe" if family == "sp_bpe" else "unigram", 270)
    vocab = ByteVocab.from_tokenizer(tok)
    model = _model(len(vocab.pieces), seed=3)
    fast = TokenByteModel(model, tok, dtype=torch.float64)
    slow = TokenByteModel(model, tok, dtype=torch.float64)
    slow.core.letter_cuts = False
    assert fast.core.letter_cuts
    text = "ab éééééébaé b'aéééé é".encode()
    a, b = fast.start(b""), slow.start(b"")
    moved = 0
    for byte in text:
        assert torch.allclose(a.logprobs().exp(), b.logprobs().exp(), atol=1e-12, rtol=0)
        assert a.trunk_logp + a.log_prefix_mass() == pytest.approx(b.trunk_logp + b.log_prefix_mass(), abs=1e-9)
        a.advance(byte)
        b.advance(byte)
        moved += a.cut > b.cut
    assert moved > 5  # the letter cuts did move the cut ahead of the pre-token starts
    assert score_bytes(fast, text, end=True) == pytest.approx(score_bytes(slow, text, end=True), abs=1e-9)


def test_inside_a_run_matches_brute_force(tiny_bpe_model):
    tok, vocab, model = tiny_bpe_model
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    oracle = Oracle(model, vocab, vocab.start_id, vocab.eos_id)
    text = "b éééé".encode()
    for end in range(len(text) - 3, len(text) + 1):
        prefix = text[:end]
        got = bm.next_byte_logprobs(prefix).exp().numpy()
        assert np.allclose(got, oracle.next_byte(prefix), atol=1e-9, rtol=0), prefix
        state = bm.start(prefix)
        assert state.trunk_logp + state.log_prefix_mass() == pytest.approx(math.log(oracle.mass(prefix)), abs=1e-9)
