"""HAT's word-splitting rule, decided causally so a model can use it byte by byte.

The rule (Neitemeier et al., HAT; the `hat-splitter` reference pipeline, reimplemented
here from its description in `methods/bytemodels.md`):
1. Unicode (UAX #29) word boundaries;
2. every punctuation character (`\\p{P}`) is split off;
3. camelCase is split between a lower- and an upper-case letter;
4. runs of spaces stay together;
5. a word is *one* leading space + one piece + trailing punctuation:
   `"Hello, world!" -> ["Hello,", " world!"]`;
6. other whitespace (`\\n`, `\\t`, several spaces) is a word of its own;
7. words longer than `max_word_bytes` are cut, always between characters.

Why causal. A hierarchical model pools a word once the next word has started,
and its byte decoder may only use words that the bytes read so far delimit. So
whether a character starts a word must depend on that character and the ones
before it, never on what follows. Two changes make the rule causal:
- UAX #29's look-ahead rules (WB6, WB7, WB7b, WB7c, WB11, WB12: `a.b`, `3.14`)
  are left out. Their middle characters are punctuation, which step 2 splits
  off anyway, except U+2044 FRACTION SLASH, which here stands alone.
- Bytes are decoded incrementally. A character is known once its last byte is
  read (an invalid byte once the byte after it shows it cannot be completed),
  so a word *starts* at its first character's first byte but is *revealed* at
  that character's last byte. Invalid UTF-8 bytes are characters of their own
  (Python's `surrogateescape`), so any bytes split and join back exactly.

`WordStream` is the one implementation: `word_starts` and `split_words` run it
over whole texts, the models run it over training rows and during generation.
"""
from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

import regex

_WB = ("ALetter", "Hebrew_Letter", "Numeric", "Katakana", "ExtendNumLet", "Extend", "Format", "ZWJ",
       "Regional_Indicator", "WSegSpace", "CR", "LF", "Newline")
_WB_RE = [(name, regex.compile(r"\p{Word_Break=%s}" % name)) for name in _WB]
_PICTO = regex.compile(r"\p{Extended_Pictographic}")
_WHITESPACE = regex.compile(r"[\p{Z}\t\r\n\f]")  # the reference's whitespace class
_PUNCT = regex.compile(r"\p{P}")
_LETTERS = ("ALetter", "Hebrew_Letter")
_IGNORED = ("Extend", "Format", "ZWJ")  # WB4: they join the character before them
_NEWLINES = ("CR", "LF", "Newline")

# chunk kinds: exactly one space, other whitespace, one punctuation character, anything else
SPACE, WHITE, PUNCT, OTHER = "space", "white", "punct", "other"


@dataclass(frozen=True)
class CharInfo:
    wb: str  # UAX #29 Word_Break value ("Other" when none of _WB)
    picto: bool  # Extended_Pictographic (emoji joined by ZWJ)
    punct: bool
    white: bool
    lower: bool
    upper: bool


_INFO: dict[str, CharInfo] = {}


def char_info(ch: str) -> CharInfo:
    """The properties the rule reads, cached per character (a surrogate escape is 'Other')."""
    info = _INFO.get(ch)
    if info is None:
        wb = next((name for name, pattern in _WB_RE if pattern.match(ch)), "Other")
        cat = unicodedata.category(ch)
        info = CharInfo(wb, bool(_PICTO.match(ch)), bool(_PUNCT.match(ch)), bool(_WHITESPACE.match(ch)),
                        cat == "Ll", cat == "Lu")
        _INFO[ch] = info
    return info


def _uax_joins(prev: CharInfo | None, last: CharInfo | None, cur: CharInfo, ri_run: int) -> bool:
    """True when UAX #29 (without look-ahead) puts no boundary before `cur`.

    `prev` is the character just before, `last` the one before it that WB4 does
    not skip, `ri_run` how many regional indicators end the text so far.
    """
    if prev is None:
        return False
    if prev.wb == "CR" and cur.wb == "LF":  # WB3
        return True
    if prev.wb in _NEWLINES or cur.wb in _NEWLINES:  # WB3a, WB3b
        return False
    if prev.wb == "ZWJ" and cur.picto:  # WB3c
        return True
    if prev.wb == "WSegSpace" and cur.wb == "WSegSpace":  # WB3d
        return True
    if cur.wb in _IGNORED:  # WB4
        return True
    a, b = last.wb, cur.wb
    alnum = _LETTERS + ("Numeric",)
    if a in alnum and b in alnum:  # WB5, WB8, WB9, WB10
        return True
    if a == b == "Katakana":  # WB13
        return True
    if b == "ExtendNumLet" and a in alnum + ("Katakana", "ExtendNumLet"):  # WB13a
        return True
    if a == "ExtendNumLet" and b in alnum + ("Katakana",):  # WB13b
        return True
    if a == b == "Regional_Indicator":  # WB15, WB16: flags pair up
        return ri_run % 2 == 1
    return False


class WordStream:
    """Reads bytes one at a time and reports where words start, as soon as that is known.

    `push(byte)` returns the start offsets (byte positions, counted from the
    first pushed byte) of the words revealed by this byte: usually none or one,
    more when an invalid byte turns out to stand alone. `finish()` flushes the
    bytes of an unfinished character (they become invalid characters).
    Example, pushing the bytes of b"a b": 97 -> [0], 32 -> [1] (the space
    starts " b"), 98 -> [].
    """

    def __init__(self, max_word_bytes: int = 32):
        if max_word_bytes < 4:
            raise ValueError(f"max_word_bytes must be >= 4 (one UTF-8 character), got {max_word_bytes}")
        self.max_word_bytes = max_word_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pos = 0  # bytes pushed
        self._char_pos = 0  # byte offset of the next character to come out of the decoder
        self._prev: CharInfo | None = None
        self._last: CharInfo | None = None  # last character WB4 does not skip
        self._ri_run = 0
        self._chunk: str | None = None  # kind of the current chunk
        self._prev_chunk: str | None = None
        self._word_start = 0
        self.words = 0  # words revealed so far

    def _char(self, ch: str, start: int) -> bool:
        """Feed one decoded character that starts at byte `start`; True if it starts a word."""
        info = char_info(ch)
        size = len(ch.encode("utf-8", "surrogateescape"))
        prev = self._prev
        new_chunk = (not _uax_joins(prev, self._last, info, self._ri_run) or info.punct
                     or (prev is not None and (prev.punct or (prev.lower and info.upper))))
        if new_chunk:
            kind = SPACE if ch == " " else WHITE if info.white else PUNCT if info.punct else OTHER
            self._prev_chunk, self._chunk = self._chunk, kind
            if kind in (SPACE, WHITE) or self._prev_chunk is None:
                starts = True
            elif kind == OTHER:
                starts = self._prev_chunk != SPACE
            else:  # punctuation joins the word before it, unless that was whitespace
                starts = self._prev_chunk == WHITE
        else:
            if self._chunk == SPACE:  # a space that grew is whitespace of its own
                self._chunk = WHITE
            starts = False
        if not starts and start + size - self._word_start > self.max_word_bytes:
            starts = True  # the byte cap: cut between characters
        # WB4 state
        if info.wb not in _IGNORED or prev is None or prev.wb in _NEWLINES:
            self._last = info
        self._ri_run = self._ri_run + 1 if info.wb == "Regional_Indicator" else (
            self._ri_run if info.wb in _IGNORED else 0)
        self._prev = info
        if starts:
            self._word_start = start
            self.words += 1
        return starts

    def _emit(self, text: str) -> list[int]:
        starts = []
        for ch in text:
            start = self._char_pos
            self._char_pos += len(ch.encode("utf-8", "surrogateescape"))
            if self._char(ch, start):
                starts.append(start)
        return starts

    def push(self, byte: int) -> list[int]:
        if not 0 <= byte < 256:
            raise ValueError(f"push: a byte is 0..255, got {byte}")
        self._pos += 1
        return self._emit(self._decoder.decode(bytes((byte,))))

    def finish(self) -> list[int]:
        """Flush a character left unfinished at the end (its bytes are invalid UTF-8)."""
        return self._emit(self._decoder.decode(b"", final=True))

    @property
    def pending(self) -> int:
        """Bytes read but not yet part of a known character."""
        return self._pos - self._char_pos


def word_starts(data: bytes, max_word_bytes: int = 32, final: bool = True) -> tuple[list[int], list[int]]:
    """(starts, reveals): each word's first byte, and the byte at which it became known.

    With `final=False` a character unfinished at the end is not flushed (what a
    model reading a prefix knows); with `final=True` its bytes are revealed at
    `len(data)`, by the end of the text. Example: `word_starts(b"Hi, yo")` ->
    `([0, 3], [0, 3])`; for "日本" (3 bytes per character) -> `([0, 3], [2, 5])`.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"word_starts: expected bytes, got {type(data).__name__}; use text.encode('utf-8')")
    stream = WordStream(max_word_bytes)
    starts: list[int] = []
    reveals: list[int] = []
    for i, byte in enumerate(data):
        new = stream.push(byte)
        starts += new
        reveals += [i] * len(new)
    if final:  # revealed by the end of the text, after the last byte
        new = stream.finish()
        starts += new
        reveals += [len(data)] * len(new)
    return starts, reveals


def split_words(data: bytes, max_word_bytes: int = 32) -> list[bytes]:
    """HAT words of `data`; `b"".join(split_words(x)) == x` for any bytes.

    >>> split_words("Hello, world!\\n".encode())
    [b'Hello,', b' world!', b'\\n']
    """
    starts, _ = word_starts(data, max_word_bytes)
    return [bytes(data[a:b]) for a, b in zip(starts, starts[1:] + [len(data)])]
