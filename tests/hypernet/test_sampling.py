"""The tokenizer sampler: the reference's substring scores, valid UnigramLM tokenizers that round-trip text."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel import ByteVocab
from tokenshift.hypernet.sampling import TokenizerSampler, substring_scores

EDGE_TEXTS = ["", "a", "é", "Grüße aus Köln", "東京タワー", "Москва", "😀🧑\u200d💻", "a\n\n\t  b", "\x00\x7f", " lead"]


def test_substring_scores_worked_example():
    """"ab" reads as the pre-token " ab" = "Ġab" (a prefix space is added, as the reference does).

    Every substring starting at each character (stride 1) scores its length in bytes:
    "Ġ" 1, "Ġa" 2, "Ġab" 3, "a" 1, "ab" 2, "b" 1.
    """
    assert dict(substring_scores(["ab"], stride=1)) == {"Ġ": 1, "Ġa": 2, "Ġab": 3, "a": 1, "ab": 2, "b": 1}


def test_substring_scores_count_bytes_of_multibyte_characters():
    scores = substring_scores(["é"], stride=1)  # "Ġé" is three bytes: 0x20 0xC3 0xA9 -> "Ġ", "Ã", "©"
    assert scores["ĠÃ©"] == 3 and scores["Ã©"] == 2
    assert "©" not in scores  # substrings start at characters, never inside one


def test_sampled_tokenizer_is_a_unigram_of_the_requested_size(corpus):
    sampler = TokenizerSampler(vocab_size=1000, stride=1, seed=0)
    tok = sampler.sample(corpus)
    spec = json.loads(tok.backend_tokenizer.to_str())
    assert spec["model"]["type"] == "Unigram"
    assert len(tok) == 1000
    assert tok.convert_ids_to_tokens(0) == "<|endoftext|>" and tok.eos_token_id == 0
    vocab = ByteVocab.from_tokenizer(tok)
    assert vocab.lossless, vocab.lossy_reason
    assert all(vocab.byte_token(b) is not None for b in range(256))  # every byte is spellable


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_sampled_tokenizer_roundtrips_text(corpus, text):
    tok = TokenizerSampler(vocab_size=600, seed=1).sample(corpus)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    vocab = ByteVocab.from_tokenizer(tok)
    assert vocab.decode_bytes(vocab.encode(text.encode())) == text.encode()


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_text_roundtrips(text):
    tok = _shared_tokenizer()
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def _shared_tokenizer(cache={}):  # noqa: B006  (a module-level cache for the hypothesis test)
    if "tok" not in cache:
        cache["tok"] = TokenizerSampler(vocab_size=600, seed=2).sample(["the cat sat on the mat " * 20, "Grüße 東京"])
    return cache["tok"]


def test_same_seed_same_tokenizer_other_seed_another(corpus):
    def vocab(seed):
        return TokenizerSampler(vocab_size=800, seed=seed).sample(corpus).get_vocab()

    assert vocab(0) == vocab(0)
    assert vocab(0) != vocab(3)


def test_queue_forgets_the_oldest_batch():
    sampler = TokenizerSampler(vocab_size=500, queue_size=2, stride=1, noise_mean=0)
    sampler.push(["zzqx zzqx zzqx"])
    assert "Ġzzqx" in sampler.sample(["hello world"]).get_vocab()
    sampler.push(["hello again"])  # the zzqx batch leaves the queue of two
    assert "Ġzzqx" not in sampler.sample().get_vocab()


def test_more_frequent_substrings_make_longer_tokens():
    """Without noise the vocabulary keeps the highest frequency x length substrings."""
    text = "tokenization " * 50 + "rare words here"
    tok = TokenizerSampler(vocab_size=420, stride=1, noise_mean=0).sample([text])
    assert tok.convert_ids_to_tokens(tok.encode(" tokenization", add_special_tokens=False)) == ["Ġtokenization"]


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="too small"):
        TokenizerSampler(vocab_size=300).sample(["abc"])
    with pytest.raises(ValueError, match="no text"):
        TokenizerSampler().sample([""])
    with pytest.raises(ValueError, match="queue is empty"):
        TokenizerSampler().sample()
    with pytest.raises(ValueError, match="stride"):
        TokenizerSampler(stride=0)
