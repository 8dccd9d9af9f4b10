"""TokenLM, the BPE baseline: packed documents stay apart, bits per byte on the byte scale, and it saves
as a plain Hugging Face folder that the exact byte model reads."""
from __future__ import annotations

import math

import pytest
import torch
from tiny import byte_bpe

from tokenshift.bytelevel import score_bytes
from tokenshift.bytelevel.scoring import plain_token_bits
from tokenshift.models.tokenlm import TokenLM, TokenLMConfig, train_tokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TokenLM(TokenLMConfig(d_model=32, n_layers=2, n_heads=2, init_std=0.2), byte_bpe()).eval()


def test_packed_documents_do_not_see_each_other(model):
    a = torch.tensor([[model.bos, 5, 6, 7, model.bos, 8, 9]])
    b = a.clone()
    b[0, 1:4] = torch.tensor([10, 11, 12])
    with torch.no_grad():
        la, lb = model(a), model(b)
    torch.testing.assert_close(la[0, 4:], lb[0, 4:], atol=0, rtol=0)
    assert not torch.allclose(la[0, 1:4], lb[0, 1:4])


def test_target_bytes_count_the_bytes_tokens_spell(model):
    text = b"ab ba aab abba"
    ids = model.vocab.encode(text)
    assert int(model.target_bytes()[ids].sum()) == len(text)
    assert model.target_bytes()[model.bos] == 0


def test_hf_folder_roundtrip_and_exact_bits(model, tmp_path):
    from transformers import AutoModelForCausalLM

    model.save_pretrained(tmp_path / "tok_lm")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "tok_lm")
    loaded = TokenLM.from_pretrained(tmp_path / "tok_lm")
    ids = torch.tensor([[model.bos, *model.vocab.encode(b"ab ba")]])
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model.hf(ids).logits)
        torch.testing.assert_close(loaded(ids), model(ids))
    bm = loaded.byte_model()
    text = b"ab ba a"
    exact = -score_bytes(bm, text, progress=False)
    plain = plain_token_bits(bm, text).bits
    assert math.isfinite(exact) and 0 < exact <= plain + 1e-6  # the covers only add probability


def test_tokenizer_training_and_errors():
    tok = train_tokenizer(["hello world " * 50], 300, fim=True)
    assert {"<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"} <= set(tok.get_vocab())
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(["x"], 100)
    with pytest.raises(ValueError, match="divisible"):
        TokenLMConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        TokenLM(TokenLMConfig(d_model=32, n_heads=2, vocab_size=10), byte_bpe())
