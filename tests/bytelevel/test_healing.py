"""Token healing and the naive baseline on a tokenizer that has "://"."""
from __future__ import annotations

import math

import pytest
import torch
from tiny import byte_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.healing import (
    _back_off, _continue, _Setup, continuation_bits, naive_complete, token_healing_complete,
)

URL_TEXT = "see https://ab.cd and http://ef.gh or https://ij.kl now\n" * 30


@pytest.fixture(scope="module")
def url_model():
    """A tiny model that loves the token "://" (a large output bias), and its tokenizer."""
    tok = byte_bpe(320, ("<|endoftext|>",), URL_TEXT)
    vocab = ByteVocab.from_tokenizer(tok)
    colon_slash = vocab.pieces.index(b"://")
    model = tiny_llama(len(vocab.pieces), seed=4, dtype=torch.float64)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True).double()
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[colon_slash] = 1e4
    model.lm_head = head
    return model, tok, vocab


def test_tokenizer_has_the_tokens_the_case_needs(url_model):
    _, _, vocab = url_model
    assert vocab.encode(b"https:")[-1] == vocab.pieces.index(b":")


def test_healing_continues_https_colon_with_slashes(url_model):
    model, tok, _ = url_model
    assert token_healing_complete(model, tok, "https:", max_new_tokens=1) == "//"
    assert naive_complete(model, tok, "https:", max_new_tokens=1) == "://"  # the mid-token failure
    assert token_healing_complete(model, tok, b"https:", max_new_tokens=1, back_off=0) == b"://"  # no healing


def test_multi_token_back_off_spells_the_removed_bytes_first(url_model):
    model, tok, _ = url_model
    setup = _Setup(model, tok)
    prompt, removed = _back_off(setup, b"see https:", 3)
    assert b"".join(setup.vocab.pieces[i] for i in prompt) + removed == b"see https:"
    out = _continue(setup, prompt, removed, 8, 0.0, None)
    assert out.startswith(removed) and len(removed) > 1
    healed = token_healing_complete(model, tok, b"see https:", max_new_tokens=8, back_off=3)
    assert out == removed + healed


def test_continuation_bits_match_a_plain_forward(url_model):
    model, tok, vocab = url_model
    prefix, cont = b"see https:", b"//ab"
    start = vocab.start_id
    naive_ids = vocab.encode(prefix) + vocab.encode_raw(cont)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([[start, *naive_ids]])).logits[0].double(), -1)
    k = len(vocab.encode(prefix))
    want = -sum(float(lp[k + i, t]) for i, t in enumerate(naive_ids[k:])) / math.log(2)
    assert continuation_bits(model, tok, prefix, cont, "naive") == pytest.approx(want, rel=1e-9)
    healed = continuation_bits(model, tok, prefix, cont, "healing")
    assert healed < want  # healing lets the model use "://"
    with pytest.raises(ValueError, match="method"):
        continuation_bits(model, tok, prefix, cont, "magic")


def test_context_and_end_tokens_as_a_fim_prompt_uses_them(url_model):
    """Token ids before the prompt (a FIM prompt) are read as given; end tokens are scored and stop generation."""
    model, tok, vocab = url_model
    eos = vocab.eos_id
    context, prefix, cont = [eos, *vocab.encode(b"see ")], b"https:", b"//ab"
    ids = vocab.encode(prefix) + vocab.encode_raw(cont)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([[vocab.start_id, *context, *ids]])).logits[0].double(), -1)
    k = len(context) + len(vocab.encode(prefix))
    want = -sum(float(lp[k + i, t]) for i, t in enumerate(ids[len(vocab.encode(prefix)):])) / math.log(2)
    got = continuation_bits(model, tok, prefix, cont, "naive", context=context)
    assert got == pytest.approx(want, rel=1e-9)
    ended = continuation_bits(model, tok, prefix, cont, "naive", context=context, end_ids=[eos])
    assert ended == pytest.approx(want - float(lp[k + len(ids) - len(vocab.encode(prefix)), eos]) / math.log(2),
                                  rel=1e-9)
    # "://" is the only likely token: ending at it stops after one token
    assert naive_complete(model, tok, b"https", max_new_tokens=5, context=context,
                          end_ids=[vocab.pieces.index(b"://")]) == b""
    assert naive_complete(model, tok, b"https", max_new_tokens=1, context=context) == b"://"
