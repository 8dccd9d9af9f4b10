"""The causal HAT splitter: exact round trip on any bytes, prefix stability, the rule's examples,
agreement with a direct (look-ahead) reading of the rule on real text, and words per language."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitref import reference_split

from tokenshift.models.splitter import WordStream, split_words, word_starts

SAMPLES = {
    "en": "The quick brown fox jumps over the lazy dog. It was a bright cold day in April.",
    "de": "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. Grüße aus Köln!",
    "ru": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "ja": "日本語の文章です。カタカナとひらがなと漢字があります。",
    "code": "def parseHTTPResponse(self, raw_bytes):\n    return self._cache.get(key, None)  # ok\n",
}
UTF8_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(st.binary(max_size=200), st.integers(4, 40))
@settings(max_examples=300, deadline=None)
def test_split_join_roundtrip_any_bytes(data, cap):
    words = split_words(data, cap)
    assert b"".join(words) == data
    assert all(0 < len(w) <= cap for w in words)


@given(UTF8_TEXT, st.integers(4, 16))
@settings(max_examples=200, deadline=None)
def test_cuts_fall_between_characters_of_valid_text(text, cap):
    for word in split_words(text.encode(), cap):
        word.decode("utf-8")  # raises if a cut split a character


@given(st.one_of(st.binary(max_size=80), UTF8_TEXT.map(str.encode)), st.data())
@settings(max_examples=300, deadline=None)
def test_prefix_knows_exactly_the_words_revealed_so_far(data, draw):
    """Causality: reading a prefix reveals the same word starts as the whole text did by then."""
    k = draw.draw(st.integers(0, len(data)))
    starts, reveals = word_starts(data, 8)
    assert reveals == sorted(reveals) and all(s <= r for s, r in zip(starts, reveals))
    p_starts, p_reveals = word_starts(data[:k], 8, final=False)
    assert p_starts == [s for s, r in zip(starts, reveals) if r < k]
    assert p_reveals == [r for r in reveals if r < k]


def test_examples_of_the_rule():
    assert split_words("Hello, world!\n".encode()) == [b"Hello,", b" world!", b"\n"]
    assert split_words(b"camelCase foo_bar") == [b"camel", b"Case", b" foo_", b"bar"]
    assert split_words(b"a  b\t\tc") == [b"a", b"  ", b"b", b"\t", b"\t", b"c"]
    assert split_words(b" (a) x.y") == [b" (", b"a)", b" x.", b"y"]
    assert split_words("テキスト日本".encode()) == ["テキスト".encode(), "日".encode(), "本".encode()]


def test_edge_inputs():
    assert split_words(b"") == []
    assert split_words(b"a") == [b"a"]
    assert split_words(b"\xe6\x97") == [b"\xe6", b"\x97"]  # a character cut in the middle: two invalid bytes
    assert split_words("a 👍🏽b".encode()) == [b"a", " 👍🏽".encode(), b"b"]  # emoji + skin tone stay one
    assert split_words(b"x" * 70, 32) == [b"x" * 32, b"x" * 32, b"x" * 6]
    assert split_words(("привет" * 2).encode(), 8) == ["прив".encode(), "етпр".encode(), "ивет".encode()]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="max_word_bytes"):
        split_words(b"abc", 3)
    with pytest.raises(TypeError, match="bytes"):
        split_words("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0..255"):
        WordStream().push(256)


def test_reveal_waits_for_the_last_byte_of_a_character():
    """A multi-byte character is known only at its last byte; an invalid byte once the next byte shows it."""
    assert word_starts("日本".encode()) == ([0, 3], [2, 5])
    assert word_starts(b"ab\xe6A", final=False) == ([0, 2, 3], [0, 3, 3])


def test_agrees_with_the_lookahead_rule_on_real_text(shared_texts):
    """On real text the causal rule gives the same words as the direct reading of the rule (uncapped)."""
    for lang, text in shared_texts.items():
        text = text[:30000]
        assert split_words(text.encode(), 10**6) == [w.encode() for w in reference_split(text)], lang


def test_word_counts_per_language():
    """Counted by hand: words are space-led in Latin and Cyrillic script; Japanese kanji and hiragana
    are one character each, a katakana run is one word, and 。 joins the word before it."""
    counts = {lang: len(split_words(text.encode())) for lang, text in SAMPLES.items()}
    assert counts["en"] == 17  # 17 space-separated words, punctuation attached
    assert counts["de"] == 13
    assert counts["ru"] == 10
    # 日 本 語 の 文 章 で す。 カタカナ と ひ ら が な と 漢 字 が あ り ま す。
    assert counts["ja"] == 22
    # def| parse|HTTPResponse(|self,| raw_|bytes):|\n|"    "|return| self._|cache.|get(|key,| None)|"  "|#| ok|\n
    assert counts["code"] == 18


def test_bytes_per_word_by_language(shared_texts):
    """Backbone shortening on real text: Japanese ~one character (3 bytes) per word, Russian ~10 bytes."""
    per_word = {lang: len(t.encode()) / len(split_words(t.encode())) for lang, t in shared_texts.items()}
    assert 2.5 < per_word["ja"] < 6
    assert 7 < per_word["ru"] < 12
    assert 4 < per_word["en"] < 7
    assert per_word["de"] > per_word["en"]


@pytest.fixture(scope="module")
def shared_texts() -> dict[str, str]:
    from tokenshift.data import shared_data_dir

    folder = shared_data_dir()
    if folder is None:
        pytest.skip("../shared/data is not here")
    return {lang: (folder / f"{lang}.valid.txt").read_text()[:60000] for lang in ("en", "code", "de", "ru", "ja")}
