"""UTF-8 helpers against a brute-force definition written from the Unicode standard (Table 3-7).

The reference below never calls Python's UTF-8 codec: it lists the well-formed
byte sequences by hand, so the helpers (which do) are checked independently.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel.utf8 import incomplete_tail, utf8_allowed, utf8_runs

PROPERTY = settings(max_examples=300, deadline=None)

CONT = range(0x80, 0xC0)
# Unicode Table 3-7, well-formed UTF-8 byte sequences: (first byte range, ranges of the following bytes)
WELL_FORMED = [
    (range(0x00, 0x80), []),
    (range(0xC2, 0xE0), [CONT]),
    (range(0xE0, 0xE1), [range(0xA0, 0xC0), CONT]),
    (range(0xE1, 0xED), [CONT, CONT]),
    (range(0xED, 0xEE), [range(0x80, 0xA0), CONT]),
    (range(0xEE, 0xF0), [CONT, CONT]),
    (range(0xF0, 0xF1), [range(0x90, 0xC0), CONT, CONT]),
    (range(0xF1, 0xF4), [CONT, CONT, CONT]),
    (range(0xF4, 0xF5), [range(0x80, 0x90), CONT, CONT]),
]


def shape(seq: bytes) -> str:
    """'complete' for one well-formed character, 'partial' for a proper prefix of one, else 'invalid'."""
    for first, rest in WELL_FORMED:
        if seq and seq[0] in first:
            if len(seq) > 1 + len(rest) or any(b not in r for b, r in zip(seq[1:], rest)):
                return "invalid"
            return "complete" if len(seq) == 1 + len(rest) else "partial"
    return "invalid"


def char_length_at(data: bytes, i: int) -> int:
    """Length of the well-formed character starting at `data[i]`, 0 if none."""
    return next((n for n in range(1, 5) if shape(data[i : i + n]) == "complete"), 0)


def reference_runs(data: bytes) -> list[tuple[bool, bytes]]:
    """(is_text, raw): maximal runs of whole characters, and single bytes that start none."""
    out: list[tuple[bool, bytes]] = []
    i = 0
    while i < len(data):
        n = char_length_at(data, i)
        if n == 0:
            out.append((False, data[i : i + 1]))
            i += 1
        elif out and out[-1][0]:
            out[-1] = (True, out[-1][1] + data[i : i + n])
            i += n
        else:
            out.append((True, data[i : i + n]))
            i += n
    return out


def reference_tail(data: bytes) -> int:
    return next((k for k in range(1, 4) if shape(data[len(data) - k :]) == "partial" and k <= len(data)), 0)


# bytes that make UTF-8 interesting: ASCII, continuation bytes, lead bytes at the edges of Table 3-7
EDGES = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
         0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
edgy = st.lists(st.sampled_from(EDGES), max_size=12).map(bytes)
mixed = st.lists(st.one_of(edgy, st.text(max_size=4).map(str.encode), st.binary(max_size=4)), max_size=4).map(b"".join)


def test_reference_agrees_with_known_characters():
    """The hand-written table accepts every encoded code point and rejects surrogates and overlongs."""
    for cp in [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF, 0x20AC, 0x1F600]:
        assert shape(chr(cp).encode("utf-8")) == "complete"
    for bad in [b"\xed\xa0\x80", b"\xc0\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\x80"]:
        assert shape(bad) == "invalid"


@PROPERTY
@given(data=st.one_of(edgy, mixed))
def test_utf8_runs_matches_reference(data):
    runs = utf8_runs(data)
    assert b"".join(raw for _, raw in runs) == data
    assert [(text is not None, raw) for text, raw in runs] == reference_runs(data)
    for text, raw in runs:
        if text is not None:
            assert text.encode("utf-8") == raw
        else:
            assert len(raw) == 1


def test_utf8_runs_docstring_example():
    assert utf8_runs(b"ab\xffc\xe2\x82") == [("ab", b"ab"), (None, b"\xff"), ("c", b"c"), (None, b"\xe2"), (None, b"\x82")]
    assert utf8_runs(b"") == []


@PROPERTY
@given(data=st.one_of(edgy, mixed))
def test_incomplete_tail_matches_reference(data):
    assert incomplete_tail(data) == reference_tail(data)


def test_incomplete_tail_examples():
    euro = "€".encode()  # e2 82 ac
    grin = "😀".encode()  # f0 9f 98 80
    assert [incomplete_tail(euro[:k]) for k in range(4)] == [0, 1, 2, 0]
    assert [incomplete_tail(b"x" + grin[:k]) for k in range(5)] == [0, 1, 2, 3, 0]
    assert incomplete_tail(b"\xe0\x80") == 0  # never completes
    assert incomplete_tail(b"\xed\xa0") == 0  # a surrogate would follow


@PROPERTY
@given(data=st.one_of(edgy, mixed))
def test_utf8_allowed_matches_reference(data):
    allowed = utf8_allowed(data)
    assert allowed.shape == (257,)
    tail = data[len(data) - reference_tail(data) :]
    for b in range(256):
        assert allowed[b] == (shape(tail + bytes([b])) in ("complete", "partial")), hex(b)
    assert allowed[256] == (not tail)
