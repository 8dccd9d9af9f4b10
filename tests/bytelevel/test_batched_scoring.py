"""`score_texts` and the batched `token_bits_per_byte` against the one-at-a-time paths they replace.

`score_texts` claims to equal `score_bytes` exactly (the trunk before the last
stable cut is plain token probability, the rest the same cover sums), so it is
checked against it on random byte strings of every tokenizer family, with
prefixes, end of text, batch sizes and logits windows small enough to split
every row; `score_bytes` itself is checked against brute force in test_exact.py.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import FAMILIES, TRAIN_TEXT, byte_bpe, family_tokenizer, tiny_llama

from tokenshift.bytelevel import ByteVocab, TokenByteModel, bits_per_byte, score_bytes, score_texts
from tokenshift.bytelevel.scoring import plain_token_bits, token_bits_per_byte

WORDS = st.text(alphabet="ab é'1\n.", max_size=24).map(lambda s: s.encode("utf-8"))
TEXTS = st.lists(st.binary(max_size=10) | WORDS, min_size=1, max_size=5)


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    tok = family_tokenizer(request.param)
    vocab = ByteVocab.from_tokenizer(tok)
    return request.param, TokenByteModel(tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64), tok,
                                         dtype=torch.float64)


def _lossless(family: str, texts: list[bytes]) -> list[bytes]:
    """SentencePiece spells only what its byte fallback can: byte-level BPE takes any bytes."""
    return texts if family == "byte_bpe" else [t.decode("utf-8", "ignore").encode() for t in texts]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS, prefix=st.sampled_from([b"", b"ab b", b"a "]), end=st.booleans(),
       batch_size=st.sampled_from([1, 2, 8]), budget=st.sampled_from([1 << 26, 300, 1]))
def test_score_texts_is_score_bytes(family_model, texts, prefix, end, batch_size, budget):
    family, bm = family_model
    texts = _lossless(family, texts)
    bm.core.lm.row_budget = budget  # 1: every position its own window, the cache carried between them
    try:
        got = score_texts(bm, texts, prefix=prefix, end=end, batch_size=batch_size)
    finally:
        bm.core.lm.row_budget = 1 << 26
    want = [score_bytes(bm, t, prefix=prefix, end=end) for t in texts]
    assert got == pytest.approx(want, abs=1e-9)


def test_long_texts_cost_one_batched_forward_plus_a_short_tail_each():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    bm = TokenByteModel(tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64), tok, dtype=torch.float64)
    texts = [TRAIN_TEXT[i : i + 200].encode() for i in (0, 37, 90, 151)]
    calls = bm.forward_calls
    got = score_texts(bm, texts, batch_size=4)
    per_text = (bm.forward_calls - calls - 1) / len(texts)  # one batched forward for the four trunks
    assert per_text <= 3, "the bytes after the last stable cut need a call or two, not one per 32 bytes"
    assert got == pytest.approx([score_bytes(bm, t) for t in texts], abs=1e-9)
    for text, score in zip(texts, got):  # the other covers only add mass
        assert -score <= plain_token_bits(bm, text).bits + 1e-9


class FullForwardScorer:
    """A `NextTokenScorer` without trees or caches: every row a full forward (the generic path)."""

    def __init__(self, model):
        self.model, self.vocab_size, self.calls = model, model.config.vocab_size, 0

    @torch.no_grad()
    def logprobs(self, trunk, tails):
        self.calls += 1
        rows = [torch.log_softmax(self.model(input_ids=torch.tensor([list(trunk) + list(t)])).logits[0, -1].double(),
                                  -1) for t in tails]
        return torch.stack(rows) if rows else torch.zeros(0, self.vocab_size, dtype=torch.float64)


def test_scorers_without_batched_trunks_and_other_byte_models_give_the_same_scores():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64)
    texts = [b"ab ba aab", b"b'a \xc3", b""]
    want = [score_bytes(TokenByteModel(model, tok, dtype=torch.float64), t) for t in texts]
    generic = TokenByteModel(FullForwardScorer(model), tok)
    assert score_texts(generic, texts, batch_size=2) == pytest.approx(want, abs=1e-9)
    reference = TokenByteModel(model, tok, tokenizations="all", dtype=torch.float64)  # no cuts: text by text
    assert score_texts(reference, texts[:2]) == pytest.approx([score_bytes(reference, t) for t in texts[:2]],
                                                              abs=1e-12)


def test_bits_per_byte_batches_and_refuses_bad_input():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64)
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    texts = [b"ab ba", b"1234 12 ab", b"\xe9 a"]
    want = -sum(score_bytes(bm, t) for t in texts) / sum(map(len, texts))
    assert bits_per_byte(bm, texts, progress=False, batch_size=2) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        score_texts(bm, texts, batch_size=0)
    with pytest.raises(TypeError, match="bytes"):
        score_texts(bm, ["ab"])


def test_token_bits_per_byte_is_the_same_batched_and_windowed():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64).train()
    texts = [TRAIN_TEXT[i : i + n].encode() for i, n in ((0, 300), (50, 40), (400, 120))]
    one = token_bits_per_byte(model, tok, texts, window=16, progress=False, batch_size=1)
    many = token_bits_per_byte(model, tok, texts, window=16, progress=False, batch_size=8)
    per_text = one.pop("text_bits")
    assert many.pop("text_bits") == pytest.approx(per_text, rel=1e-12)
    assert many == pytest.approx(one, rel=1e-12)
    assert model.training, "scoring leaves the caller's train/eval mode as it was"
    model.config.sliding_window = 4096  # read by HFTokenLM only: every position at once, no cache windows
    try:
        whole = token_bits_per_byte(model, tok, texts, window=16, progress=False, batch_size=8)
    finally:
        del model.config.sliding_window
    assert whole.pop("text_bits") == pytest.approx(per_text, rel=1e-12)
    # the definition, one window at a time with full forwards
    bits = 0.0
    for text, text_bits in zip(texts, per_text):
        before = bits
        ids = vocab.encode(text)
        for lo in range(0, len(ids), 16):
            seq = torch.tensor([[vocab.start_id, *ids[lo : lo + 16]]])
            with torch.no_grad():
                lp = torch.log_softmax(model.eval()(input_ids=seq).logits[0, :-1, : len(vocab.pieces)].double(), -1)
            bits -= float(lp.gather(1, seq[0, 1:, None]).sum()) / math.log(2)
        assert text_bits == pytest.approx(bits - before, rel=1e-12)
    assert one["bits_per_byte"] == pytest.approx(bits / sum(map(len, texts)), rel=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        token_bits_per_byte(model, tok, texts, batch_size=0)
