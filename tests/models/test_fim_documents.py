"""FIM training documents (Bavarian et al.): the document is recoverable, rate 0 is the identity, the
rates hold, the layout is the one `bytelevel.fim` prompts with, and special-token text stays text."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import FIM_SPECIALS, byte_bpe

from tokenshift.bytelevel import ByteVocab
from tokenshift.models.data import TextData, fim_token_ids
from tokenshift.models.fim import fim_document, fim_recover, fim_split

CODE = "def add(a, b):\n    return a + b  # é 日本\n"


@pytest.fixture(scope="module")
def vocab():
    return ByteVocab.from_tokenizer(byte_bpe(300, FIM_SPECIALS, CODE * 5))


def codec(vocab):
    encode = lambda text: vocab.encode_raw(text.encode())  # noqa: E731
    decode = lambda ids: b"".join(vocab.pieces[i] for i in ids)  # noqa: E731
    return encode, decode


@given(st.text(max_size=40), st.integers(0, 2**32), st.sampled_from([0.0, 1.0]))
@settings(max_examples=150, deadline=None)
def test_fim_document_is_recoverable(vocab, text, seed, spm_rate):
    encode, decode = codec(vocab)
    tokens = fim_token_ids(vocab)
    ids = fim_document(text, encode, tokens, 1.0, spm_rate, random.Random(seed))
    assert ids[0] == tokens.prefix and tokens.middle in ids
    if spm_rate == 1.0:
        assert ids[1] == tokens.suffix
    assert fim_recover(ids, tokens, decode) == text.encode()  # (a PSM with an empty prefix reads as SPM: same text)


def test_rate_zero_is_the_identity(vocab):
    encode, decode = codec(vocab)
    rng = random.Random(0)
    state = rng.getstate()
    assert fim_document(CODE, encode, fim_token_ids(vocab), 0.0, 0.5, rng) == encode(CODE)
    assert rng.getstate() == state  # and draws nothing


def test_psm_layout_is_what_fim_prompts_use(vocab):
    """PSM: <PRE> prefix <SUF> suffix <MID> middle, each part encoded alone (bytelevel.fim's context)."""
    encode, _ = codec(vocab)
    t = fim_token_ids(vocab)
    ids = fim_document(CODE, encode, t, 1.0, 0.0, random.Random(5))
    prefix, middle, suffix = _split_after_rate_draw(CODE, 5)
    assert ids == [t.prefix, *encode(prefix), t.suffix, *encode(suffix), t.middle, *encode(middle)]


def _split_after_rate_draw(text: str, seed: int):
    """The split fim_document makes: its first draw decides the rate, the next two cut."""
    rng = random.Random(seed)
    rng.random()
    return fim_split(text, rng)


def test_rates_hold(vocab):
    encode, _ = codec(vocab)
    t = fim_token_ids(vocab)
    rng = random.Random(1)
    docs = [fim_document(CODE, encode, t, 0.5, 0.5, rng) for _ in range(600)]
    fim = [d for d in docs if d[0] == t.prefix]
    spm = [d for d in fim if d[1] == t.suffix]
    assert 240 < len(fim) < 360  # Binomial(600, 0.5): mean 300, sd ~12
    assert 0.38 < len(spm) / len(fim) < 0.62


def test_text_data_fim_rows_and_special_text(tmp_path):
    docs = [f"def f{i}(x):\n    return x * {i}  # <fim_prefix> is text here\n" for i in range(40)]
    (tmp_path / "code.txt").write_text("\n\n".join("# file: m%d.py\n" % i + d for i, d in enumerate(docs)))
    dm = TextData(train_files=[str(tmp_path / "code.txt")], stream="tokens", vocab_size=320, fim_rate=0.5,
                  seq_len=64, batch_size=2)
    dm.setup("fit")
    vocab = ByteVocab.from_tokenizer(dm.tokenizer)
    t = fim_token_ids(vocab)
    rows = dm.train_rows.inputs.flatten().tolist()
    n_pre = rows.count(t.prefix)
    assert 0 < n_pre < 40  # some documents, not all (a few may be cut by packing)
    held = dm.valid_rows["code"].inputs.flatten().tolist()
    assert t.prefix not in held  # validation is never rewritten, and "<fim_prefix>" in text stays text


def test_bad_rates(vocab):
    encode, _ = codec(vocab)
    with pytest.raises(ValueError, match="probabilities"):
        fim_document("x", encode, fim_token_ids(vocab), 1.5, 0.5, random.Random(0))
    with pytest.raises(ValueError, match="fill-in-the-middle tokens"):
        fim_token_ids(ByteVocab.from_tokenizer(byte_bpe()))
