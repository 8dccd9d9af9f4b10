"""Fill-in-the-middle: exact byte distributions after a FIM context, against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle import Oracle
from tiny import FIM_SPECIALS, byte_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab, TokenByteModel
from tokenshift.bytelevel.exact import EOT
from tokenshift.bytelevel.fim import complete, fim_complete, fim_tokens
from tokenshift.bytelevel.utf8 import utf8_allowed


@pytest.fixture(scope="module")
def fim_model():
    tok = byte_bpe(300, FIM_SPECIALS)
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=7, dtype=torch.float64)
    return tok, vocab, model, TokenByteModel(model, tok, dtype=torch.float64)


def _psm_context(vocab, prefix: bytes, suffix: bytes):
    pre, suf, mid, ends = fim_tokens(vocab)
    return [pre, *vocab.encode(prefix), suf, *vocab.encode_raw(suffix), mid], ends


def test_fim_tokens_are_read_from_the_tokenizer(fim_model):
    _, vocab, _, _ = fim_model
    pre, suf, mid, ends = fim_tokens(vocab)
    assert [vocab.special[i] for i in (pre, suf, mid)] == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    assert vocab.eos_id in ends
    with pytest.raises(ValueError, match="no fill-in-the-middle tokens"):
        fim_tokens(ByteVocab.from_tokenizer(byte_bpe()))


@pytest.mark.parametrize("middle", [b"", b"a", b"ab", b"b ", "é".encode()[:1], b"ab b"])
def test_middle_distribution_equals_brute_force(fim_model, middle):
    """After <PRE> prefix-cut-mid-token <SUF> suffix <MID>, each next byte of the middle is the oracle's."""
    _, vocab, model, bm = fim_model
    context, ends = _psm_context(vocab, b"ab a", b"ba\n")
    oracle = Oracle(model, vocab, vocab.start_id, ends[0], context=tuple(context))
    got = bm.start(middle, context=context, end_ids=ends[:1], raw=True).logprobs().exp().numpy()
    assert np.allclose(got, oracle.next_byte(middle), atol=1e-9)


def test_cut_invariance_with_a_context(fim_model):
    """A prompt cut at every byte offset: fresh start == the uncut state advanced to the cut."""
    _, vocab, _, bm = fim_model
    context, ends = _psm_context(vocab, b"a", b"b")
    text = "ab ba é'1".encode()
    state = bm.start(b"", context=context, end_ids=ends, raw=True)
    for k in range(len(text) + 1):
        fresh = bm.start(text[:k], context=context, end_ids=ends, raw=True).logprobs()
        assert torch.allclose(fresh.exp(), state.logprobs().exp(), atol=1e-12), k
        if k < len(text):
            state.advance(text[k])


def test_greedy_middle_follows_the_exact_argmax(fim_model):
    _, vocab, model, bm = fim_model
    prefix, suffix = b"ab a", b"ba\n"
    context, ends = _psm_context(vocab, prefix, suffix)
    oracle = Oracle(model, vocab, vocab.start_id, ends[0], context=tuple(context))
    want = b""
    for _ in range(4):
        p = np.where(utf8_allowed(want), oracle.next_byte(want), 0.0)
        b = int(np.argmax(p))
        if b == EOT:
            break
        want += bytes([b])
    assert ends == [vocab.eos_id]  # one end token: the oracle's
    assert fim_complete(bm, prefix, suffix, max_bytes=4, reconnect=0) == want


def test_spm_and_plain_completion_run(fim_model):
    _, _, _, bm = fim_model
    out = fim_complete(bm, b"ab a", b"ba\n", max_bytes=6, order="spm", temperature=1.0, seed=1)
    assert isinstance(out, bytes) and len(out) <= 6
    assert complete(bm, b"ab a", max_bytes=5) == complete(bm, b"ab a", max_bytes=5)
    with pytest.raises(ValueError, match="order"):
        fim_complete(bm, b"a", b"b", order="pms")
    with pytest.raises(TypeError, match="bytes"):
        fim_complete(bm, "a", b"b")
