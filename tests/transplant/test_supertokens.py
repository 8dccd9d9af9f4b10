"""learn_supertokens: multi-word tokens, lossless, more bytes per token than the base."""
from __future__ import annotations

import pytest

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant.supertokens import bytes_per_token, learn_supertokens


def _corpus(lines: int = 600, seed: int = 0) -> str:
    """Sentences over a small vocabulary with frequent phrases (what supertokens should capture)."""
    import random

    rng = random.Random(seed)
    phrases = ["in the end", "of the", "one of the", "at the same time", "as well as", "the market", "we go"]
    words = "day night road home city river light stone water people house garden".split()
    out = []
    for _ in range(lines):
        parts = [rng.choice(phrases) if rng.random() < 0.5 else rng.choice(words) for _ in range(rng.randint(4, 9))]
        out.append(" ".join(parts).capitalize() + ".")
    return "\n".join(out) + "\n"


TEXT = _corpus()


def test_supertokens_join_words_and_compress_better(tmp_path):
    tok = learn_supertokens([TEXT], vocab_size=400, stage1_size=330)
    vocab = ByteVocab.from_tokenizer(tok)
    assert len(vocab.pieces) == 400 and vocab.lossless
    multi = [p for p in vocab.pieces if p and p.strip(b" ").count(b" ") >= 1]
    assert multi and all(b"\n" not in p[:-1] for p in multi)
    assert all(p.strip(b" ").count(b" ") < 4 for p in multi)  # max_words = 4
    base = learn_supertokens([TEXT], vocab_size=331, stage1_size=330)  # (almost) no stage 2
    data = [TEXT.encode()]
    assert bytes_per_token(tok, data) > 1.3 * bytes_per_token(base, data)
    for sample in (b"in the end of the day", "é\u00e9 ünïcode\n\nx".encode(), b"  two  spaces\n"):
        assert b"".join(vocab.pieces[i] for i in vocab.encode(sample)) == sample
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode("in the end of the day") == tok.encode("in the end of the day")


def test_extending_a_base_tokenizer_and_bad_input():
    base = learn_supertokens([TEXT], vocab_size=331, stage1_size=330)
    tok = learn_supertokens([TEXT], base_tokenizer=base, vocab_size=360)
    assert len(ByteVocab.from_tokenizer(tok).pieces) == 360
    with pytest.raises(ValueError, match="no room"):
        learn_supertokens([TEXT], base_tokenizer=base, vocab_size=100)
    with pytest.raises(ValueError, match="no text"):
        learn_supertokens([])
