"""ByteVocab: the byte view of every tokenizer family, checked against the tokenizers themselves.

Round trips are property-based (hypothesis): any text, non-ASCII, emoji, control
characters, and bytes that are not UTF-8 where the family has a token for every
byte. Expected values come from the tokenizers' own APIs (their encoders,
decoders, vocabularies), never from running ByteVocab.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel.vocab import ByteVocab

REAL = ["gpt2", "smollm2", "mistral", "cl100k"]
TINY = ["tiny_byte_bpe", "tiny_sp_bpe", "tiny_sp_unigram", "tiny_hf_sp_bpe"]
SENTENCEPIECE = ["mistral", "tiny_sp_bpe", "tiny_sp_unigram", "tiny_hf_sp_bpe"]
SP_PROCESSORS = ["mistral", "tiny_sp_bpe", "tiny_sp_unigram"]  # sentencepiece.SentencePieceProcessor objects
# every byte has a single-byte token: a byte-level alphabet, tiktoken ranks, or <0xNN> byte fallback
ALL_BYTES = ["gpt2", "cl100k", "tiny_byte_bpe"] + SENTENCEPIECE
METASPACE = "\u2581".encode()  # SentencePiece reads a literal ▁ as a space: it cannot be spelled

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY = [
    "a", "A", "Hello", " world", "é", "e\u0301", "ÉCOLE", "東京", "日本語", "😀", "🧑\u200d💻", "👍🏽", "🇩🇪",
    "\x00", "\x01", "\x1b", "\x7f", "\t", "\n", "\r\n", " ", "  ", "   ", "\u00a0", "\u2028", "\ufeff", "ﬁ",
    "Ω", "𝔘", "'s", "’", " 123", "1234567", "<|endoftext|>", "<|im_start|>", "<s>", "</s>", "<unk>", "<0x41>",
    "[CLS]", "##", "Ġ", "Ċ",
]
SPECIAL_STRINGS = ("<|endoftext|>", "<|im_start|>", "<s>", "</s>", "<unk>", "[CLS]")

texts = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(TRICKY)), max_size=6).map("".join)
text_bytes = texts.map(lambda s: s.encode("utf-8"))
any_bytes = st.lists(
    st.one_of(text_bytes, st.binary(min_size=1, max_size=3), st.sampled_from([b"\xff", b"\xc3", b"\xe6\x9d", b"\x80"])),
    max_size=5,
).map(b"".join)


def gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's byte -> character table, written out from its definition (for an independent check)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, n = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(0x100 + n)
            n += 1
    return table


def missing_single_bytes(tok) -> set[int]:
    """Bytes a byte-level BPE vocabulary has no single-byte token for, read from its raw vocabulary."""
    vocab = tok.get_vocab()
    return {b for b, ch in gpt2_byte_chars().items() if ch not in vocab}


_MISSING: dict[str, bytes] = {}


def _smollm2_missing(get_tokenizer) -> bytes:
    if "smollm2" not in _MISSING:
        _MISSING["smollm2"] = bytes(sorted(missing_single_bytes(get_tokenizer("smollm2"))))
    return _MISSING["smollm2"]


def spelled(vocab: ByteVocab, ids: list[int]) -> bytes:
    return b"".join(vocab.token_bytes(t) for t in ids)


def allowed(name: str, get_tokenizer, data: bytes) -> bytes:
    """`data` restricted to what the tokenizer can spell (see the tests of the restriction below)."""
    if name in SENTENCEPIECE:
        data = data.replace(METASPACE, b"_")
    if name == "smollm2":
        data = data.translate(None, _smollm2_missing(get_tokenizer))
    return data


def own_encode(name: str, tok, text: str) -> list[int]:
    """The tokenizer's own ids for `text` (its dummy prefix, if any; no BOS/EOS)."""
    if name == "cl100k":
        return tok.encode_ordinary(text)
    if name in SP_PROCESSORS:
        return tok.encode(text)
    return tok(text, add_special_tokens=False)["input_ids"]


# -- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL + TINY)
@PROPERTY
@given(data=any_bytes)
def test_round_trip(get_vocab, get_tokenizer, name, data):
    vocab = get_vocab(name)
    data = allowed(name, get_tokenizer, data)
    ids = vocab.encode(data)
    assert spelled(vocab, ids) == vocab.prefix_bytes + data  # token_bytes raises on a special id
    assert vocab.decode_bytes(ids) == data
    assert vocab.encode_raw(vocab.prefix_bytes + data) == ids


@pytest.mark.parametrize("name", REAL + TINY)
@PROPERTY
@given(data=text_bytes)
def test_round_trip_valid_text(get_vocab, get_tokenizer, name, data):
    """Valid UTF-8 only (the round trip above mostly mixes in stray bytes)."""
    vocab = get_vocab(name)
    data = allowed(name, get_tokenizer, data)
    assert spelled(vocab, vocab.encode(data)) == vocab.prefix_bytes + data


@pytest.mark.parametrize("name", ALL_BYTES)
def test_every_byte_has_a_single_byte_token(get_vocab, name):
    vocab = get_vocab(name)
    for b in range(256):
        token = vocab.byte_token(b)
        assert token is not None, f"no single-byte token for 0x{b:02x}"
        assert vocab.token_bytes(token) == bytes([b])
    assert vocab.decode_bytes(vocab.encode(bytes(range(256)))) == bytes(range(256))


@pytest.mark.parametrize("name", ["gpt2", "smollm2", "mistral", "cl100k", "tiny_byte_bpe", "tiny_sp_bpe", "tiny_sp_unigram"])
@PROPERTY
@given(text=texts)
def test_encode_is_the_tokenizers_own(get_vocab, get_tokenizer, name, text):
    """For valid text, `encode` returns exactly the ids the tokenizer itself produces (canonical)."""
    assume(text and not any(s in text for s in SPECIAL_STRINGS))
    text = allowed(name, get_tokenizer, text.encode("utf-8")).decode("utf-8", errors="ignore")
    assume(text)
    assert get_vocab(name).encode(text.encode("utf-8")) == own_encode(name, get_tokenizer(name), text)


# -- what a tokenizer cannot spell says so ----------------------------------------------------------


def test_smollm2_missing_bytes_raise_clear_error(get_vocab, get_tokenizer):
    """SmolLM2's byte alphabet lacks some bytes: encoding them raises instead of silently dropping them."""
    vocab, tok = get_vocab("smollm2"), get_tokenizer("smollm2")
    missing = missing_single_bytes(tok)
    assert missing, "SmolLM2 is known to lack some single-byte tokens"
    assert {b for b in range(256) if vocab.byte_token(b) is None} == missing
    for b in sorted(missing):
        data = b"a" + bytes([b]) + b"b"
        with pytest.raises(ValueError) as err:
            vocab.encode(data)
        message = str(err.value)
        assert "smollm2" in message
        assert (f"U+{b:04X}" if b < 0x80 else f"0x{b:02x}") in message
        assert "\n" not in message


def test_smollm2_unspellable_text_can_still_be_counted(get_vocab, get_tokenizer):
    """The audit counts tokens of any UTF-8 text; `strict=False` gives the tokenizer's own ids."""
    from tokenshift.bytelevel.audit import text_stats

    vocab, tok = get_vocab("smollm2"), get_tokenizer("smollm2")
    b = min(x for x in missing_single_bytes(tok) if x < 0x80)
    text = f"ab {chr(b)} cd"
    expected = tok(text, add_special_tokens=False)["input_ids"]
    assert vocab.encode(text.encode(), strict=False) == expected
    stats = text_stats(vocab, "x", text.encode())
    assert stats.tokens == len(expected) and stats.bytes == len(text.encode())


@pytest.mark.parametrize("name", SENTENCEPIECE)
def test_sentencepiece_literal_metaspace_raises(get_vocab, name):
    """SentencePiece reads a typed ▁ as a space; its bytes cannot be spelled, and encode says so."""
    with pytest.raises(ValueError, match="U\\+2581"):
        get_vocab(name).encode("a\u2581b".encode())


def test_encode_wants_bytes(get_vocab):
    with pytest.raises(TypeError, match="bytes"):
        get_vocab("gpt2").encode("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        get_vocab("gpt2").encode_raw("text")  # type: ignore[arg-type]


def test_unsupported_tokenizer_type():
    with pytest.raises(TypeError, match="unsupported tokenizer type"):
        ByteVocab.from_tokenizer(object())


# -- dummy prefix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SENTENCEPIECE)
def test_dummy_prefix_convention(get_vocab, get_tokenizer, name):
    vocab = get_vocab(name)
    assert vocab.prefix_bytes == b" "
    assert vocab.family == "sentencepiece"
    ids = vocab.encode(b"ab ba")
    assert spelled(vocab, ids) == b" ab ba"  # the model reads the dummy space ...
    assert vocab.decode_bytes(ids) == b"ab ba"  # ... the user gets their bytes back
    lead = vocab.encode(b" ab")  # a user's own leading space is kept: a second space
    assert spelled(vocab, lead) == b"  ab"
    assert vocab.decode_bytes(lead) == b" ab"
    if name in SP_PROCESSORS:  # SentencePiece itself adds the same prefix to the same text
        sp = get_tokenizer(name)
        assert ids == sp.encode("ab ba")
        assert lead == sp.encode(" ab")


@pytest.mark.parametrize("name", ["gpt2", "smollm2", "cl100k", "tiny_byte_bpe"])
def test_no_dummy_prefix(get_vocab, name):
    vocab = get_vocab(name)
    assert vocab.prefix_bytes == b""
    ids = vocab.encode(b"ab ba")
    assert vocab.token_bytes(ids[0]).startswith(b"a")
    assert spelled(vocab, ids) == vocab.decode_bytes(ids) == b"ab ba"


# -- token bytes against the tokenizers' own decoders ------------------------------------------------


def test_cl100k_token_bytes_match_tiktoken(get_vocab, get_tokenizer):
    vocab, enc = get_vocab("cl100k"), get_tokenizer("cl100k")
    for i in range(enc.n_vocab):
        if i in enc._special_tokens.values():
            continue
        try:
            expected = enc.decode_single_token_bytes(i)
        except KeyError:  # an id the rank file leaves unused
            assert vocab.pieces[i] is None
            continue
        assert vocab.token_bytes(i) == expected


def test_cl100k_bytes_from_the_public_api_are_the_rank_file_bytes(get_vocab, get_tokenizer):
    """ByteVocab reads tiktoken through `decode_single_token_bytes`; the rank table (private) agrees id for id."""
    vocab, enc = get_vocab("cl100k"), get_tokenizer("cl100k")
    ranks = {rank: raw for raw, rank in enc._mergeable_ranks.items()}
    assert {i: p for i, p in enumerate(vocab.pieces) if p is not None} == ranks
    assert vocab.special == {i: s for s, i in enc._special_tokens.items()}
    assert vocab.engine == "tiktoken" and type(vocab.backend) is type(enc)


def test_gpt2_token_bytes_match_decode(get_vocab, get_tokenizer):
    vocab, tok = get_vocab("gpt2"), get_tokenizer("gpt2")
    chars = gpt2_byte_chars()
    decoder = {c: b for b, c in chars.items()}
    checked = 0
    for token, i in tok.get_vocab().items():
        if i in vocab.special:
            continue
        assert vocab.token_bytes(i) == bytes(decoder[c] for c in token)
        checked += 1
    assert checked == len(vocab) - len(vocab.special)
    ids = list(range(0, len(vocab) - 1, 97))
    decoded = tok.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
    for i, text in zip(ids, decoded):
        if "\ufffd" not in text:
            assert vocab.token_bytes(i) == text.encode("utf-8")


@pytest.mark.parametrize("name", SP_PROCESSORS)
def test_sentencepiece_token_bytes_match_decode(get_vocab, get_tokenizer, name):
    vocab, sp = get_vocab(name), get_tokenizer(name)
    anchor = sp.piece_to_id("a")  # decode([a, i]) keeps i's leading space (only the first one is dropped)
    assert not sp.is_unknown(anchor)
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            assert vocab.pieces[i] is None and i in vocab.special
        elif sp.is_byte(i):
            assert vocab.token_bytes(i) == bytes([int(sp.id_to_piece(i)[3:5], 16)])
            assert vocab.byte_token(vocab.token_bytes(i)[0]) == i
        else:
            assert b"a" + vocab.token_bytes(i) == sp.decode([anchor, i]).encode("utf-8")


# -- special tokens --------------------------------------------------------------------------------


def special_ids(name: str, tok) -> dict[str, int]:
    if name == "cl100k":
        return dict(tok._special_tokens)
    if name in SP_PROCESSORS:
        return {tok.id_to_piece(i): i for i in (tok.bos_id(), tok.eos_id(), tok.unk_id()) if i >= 0}
    return {s: tok.convert_tokens_to_ids(s) for s in tok.all_special_tokens}


@pytest.mark.parametrize("name", REAL + ["tiny_byte_bpe", "tiny_sp_bpe", "tiny_sp_unigram"])
def test_special_tokens_are_not_bytes(get_vocab, get_tokenizer, name):
    vocab, tok = get_vocab(name), get_tokenizer(name)
    specials = special_ids(name, tok)
    assert specials
    for text, i in specials.items():
        assert vocab.pieces[i] is None and vocab.is_special(i)
        assert vocab.special[i] == text
        with pytest.raises(ValueError, match="special"):
            vocab.token_bytes(i)
        # typed by a user, the special token's string is text, spelled by ordinary tokens
        ids = vocab.encode(text.encode())
        assert not any(vocab.is_special(t) for t in ids)
        assert vocab.decode_bytes(ids) == text.encode()
    assert vocab.decode_bytes([*specials.values(), *vocab.encode(b"hi")]) == b"hi"  # decode skips specials
    with pytest.raises(IndexError):
        vocab.token_bytes(len(vocab))


def test_bos_eos(get_vocab, get_tokenizer):
    assert get_vocab("gpt2").eos_id == get_tokenizer("gpt2").eos_token_id
    sp = get_tokenizer("mistral")
    assert (get_vocab("mistral").bos_id, get_vocab("mistral").eos_id) == (sp.bos_id(), sp.eos_id())
    assert get_vocab("cl100k").eos_id == get_tokenizer("cl100k")._special_tokens["<|endoftext|>"]


# -- duplicates and unreachable tokens ---------------------------------------------------------------


@pytest.mark.parametrize("name", REAL + TINY)
def test_duplicates_match_a_linear_scan(get_vocab, name):
    vocab = get_vocab(name)
    groups: dict[bytes, list[int]] = {}
    for i in range(len(vocab)):
        if not vocab.is_special(i):
            groups.setdefault(vocab.token_bytes(i), []).append(i)
    expected = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    assert sorted(sorted(g) for g in vocab.duplicates()) == expected


def test_mistral_byte_fallback_duplicates_and_unreachable(get_vocab, get_tokenizer):
    """Mistral has <0xNN> tokens beside ordinary pieces with the same bytes; SentencePiece uses the piece."""
    vocab, sp = get_vocab("mistral"), get_tokenizer("mistral")
    dups = vocab.duplicates()
    assert dups
    unreachable = set(vocab.unreachable())
    for group in dups:
        assert len({vocab.token_bytes(i) for i in group}) == 1
        byte_ids = [i for i in group if sp.is_byte(i)]
        assert len(byte_ids) == 1, group  # a byte-fallback token and one ordinary piece
        (piece_id,) = [i for i in group if not sp.is_byte(i)]
        data = vocab.token_bytes(piece_id)
        assert vocab.encode_raw(data) == [piece_id]
        assert byte_ids[0] in unreachable and piece_id not in unreachable
    for i in unreachable:
        assert vocab.encode_raw(vocab.token_bytes(i)) != [i]


def test_gpt2_has_no_duplicates_or_unreachable(get_vocab):
    vocab = get_vocab("gpt2")
    assert vocab.duplicates() == []
    assert vocab.unreachable() == []


# -- lossy tokenizers ------------------------------------------------------------------------------


def _assert_lossy(vocab: ByteVocab, reason_part: str) -> None:
    from tokenshift.bytelevel.exact import TokenByteModel

    assert vocab.lossless is False
    assert reason_part in vocab.lossy_reason
    with pytest.raises(ValueError, match="lossy") as err:
        vocab.require_lossless("exact byte probabilities")
    assert reason_part in str(err.value) and "exact byte probabilities" in str(err.value)
    with pytest.raises(ValueError, match="lossy"):
        TokenByteModel(None, vocab)  # refused before the model is touched


def test_minilm_wordpiece_is_lossy(minilm_tokenizer_file):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(minilm_tokenizer_file))
    vocab = ByteVocab.from_tokenizer(tok, name="all-MiniLM-L6-v2")
    assert vocab.family == "wordpiece"
    _assert_lossy(vocab, "normalizer")
    data = b"Hello World"
    assert vocab.decode_bytes(vocab.encode(data)) != data  # it really loses case and the space
    # still viewable: the ids are the tokenizer's own, with no padding or truncation from tokenizer.json
    backend = tok.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    assert vocab.encode(data) == backend.encode("Hello World", add_special_tokens=False).ids
    hello, unk, pad = (backend.token_to_id(t) for t in ("hello", "[UNK]", "[PAD]"))
    assert None not in (hello, unk, pad) and hello != unk
    assert vocab.encode(b"hello " * 600) == [hello] * 600
    assert vocab.special[pad] == "[PAD]" and vocab.special[unk] == "[UNK]"


def test_tiny_wordpiece_lowercase_is_lossy():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "hello": 1, "world": 2, "##s": 3, "h": 4}, unk_token="[UNK]"))
    wp.normalizer = normalizers.Lowercase()
    wp.pre_tokenizer = pre_tokenizers.Whitespace()
    vocab = ByteVocab.from_tokenizer(wp, name="tiny-wordpiece")
    _assert_lossy(vocab, "Lowercase")
    assert vocab.token_bytes(3) == b"s"  # the continuation marker is not a byte
    assert vocab.special == {0: "[UNK]"}


def _byte_bpe_with(tmp_edit) -> ByteVocab:
    from tiny import byte_bpe
    from tokenizers import Tokenizer

    spec = json.loads(byte_bpe().backend_tokenizer.to_str())
    tmp_edit(spec)
    return ByteVocab.from_tokenizer(Tokenizer.from_str(json.dumps(spec)), name="edited")


def test_lowercasing_byte_bpe_is_lossy():
    """The normalizer alone makes a byte-level BPE lossy (no WordPiece involved); without it, lossless."""
    assert _byte_bpe_with(lambda spec: None).lossless is True
    vocab = _byte_bpe_with(lambda spec: spec.update(normalizer={"type": "Lowercase"}))
    _assert_lossy(vocab, "Lowercase")


def test_probe_catches_a_normalizer_that_looks_harmless(get_tokenizer):
    """A Replace into ▁ passes the static list of normalizers; the probe text still catches it."""
    from tokenizers import Tokenizer

    spec = json.loads(get_tokenizer("tiny_hf_sp_bpe").backend_tokenizer.to_str())
    assert spec["normalizer"] is None
    spec["normalizer"] = {"type": "Replace", "pattern": {"String": "x"}, "content": "\u2581"}
    vocab = ByteVocab.from_tokenizer(Tokenizer.from_str(json.dumps(spec)), name="replace-x")
    assert vocab.lossless is False and vocab.lossy_reason
    with pytest.raises(ValueError, match="lossy"):
        vocab.require_lossless("exact")


@pytest.mark.parametrize("name", REAL + TINY)
def test_real_and_tiny_tokenizers_are_lossless(get_vocab, name):
    vocab = get_vocab(name)
    assert vocab.lossless, vocab.lossy_reason
    vocab.require_lossless("exact")  # does not raise


def test_a_lone_byte_outside_a_partial_byte_alphabet_is_named(get_vocab, get_tokenizer):
    """SmolLM2 is byte-level BPE whose alphabet lacks some bytes: say so, not "no byte-level alphabet"."""
    vocab = get_vocab("smollm2")
    missing = _smollm2_missing(get_tokenizer)
    lone = next(b for b in missing if b >= 0x80)  # invalid UTF-8 on its own
    with pytest.raises(ValueError) as err:
        vocab.encode_raw(bytes([lone]))
    message = str(err.value)
    assert f"0x{lone:02x}" in message
    assert f"lacks {len(missing)} of the 256 bytes" in message
    assert "no byte-level alphabet" not in message
