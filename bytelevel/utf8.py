"""UTF-8 helpers: split raw bytes into valid text runs and stray bytes.

Tokenizers read `str`, but users hand us `bytes` that may be cut mid-character
or not be UTF-8 at all. Everything that must pass bytes through a text API goes
through `utf8_runs`, so the rule for invalid bytes lives in one place.
"""
from __future__ import annotations

import functools


def utf8_runs(data: bytes) -> list[tuple[str | None, bytes]]:
    """Split `data` into maximal valid UTF-8 runs and single invalid bytes.

    Returns a list of `(text, raw)`: `text` is the decoded run, or `None` for a
    byte that is not part of any valid character (then `raw` is that one byte).
    Joining every `raw` gives `data` back.

    Example: `utf8_runs(b"ab\\xffc\\xe2\\x82")` ->
    `[("ab", b"ab"), (None, b"\\xff"), ("c", b"c"), (None, b"\\xe2"), (None, b"\\x82")]`.
    """
    runs: list[tuple[str | None, bytes]] = []
    rest = data
    while rest:
        try:
            runs.append((rest.decode("utf-8"), rest))
            break
        except UnicodeDecodeError as err:
            if err.start:
                runs.append((rest[: err.start].decode("utf-8"), rest[: err.start]))
            runs.append((None, rest[err.start : err.start + 1]))
            rest = rest[err.start + 1 :]
    return runs


def incomplete_tail(data: bytes) -> int:
    """Number of trailing bytes that begin a UTF-8 character not yet complete (0-3).

    Example: `incomplete_tail(b"caf\\xc3")` == 1; `incomplete_tail(b"caf\\xc3\\xa9")` == 0.
    Only true prefixes of some valid character count (`b"\\xe0\\x80"` never completes).
    """
    for back in range(1, min(3, len(data)) + 1):
        try:
            data[-back:].decode("utf-8")
        except UnicodeDecodeError as err:
            # CPython says "unexpected end of data" only for a valid, truncated sequence
            if err.start == 0 and err.reason == "unexpected end of data":
                return back
    return 0


@functools.lru_cache(maxsize=1024)
def _allowed_after(tail: bytes) -> tuple[bool, ...]:
    # Not the incremental decoder: with final=False CPython accepts b"\xed\xa0" (the start
    # of a surrogate) and only rejects it a byte later, which would lead a sampler into a
    # dead end. A one-shot decode checks the second byte against Unicode's Table 3-7.
    allowed = []
    for b in range(256):
        seq = tail + bytes([b])
        try:
            seq.decode("utf-8")
            allowed.append(True)  # completes a character
        except UnicodeDecodeError as err:  # still a true prefix of some character?
            allowed.append(err.start == 0 and err.end == len(seq) and err.reason == "unexpected end of data")
    return tuple(allowed) + (not tail,)  # end of text only after a complete character


def utf8_allowed(data: bytes) -> "np.ndarray":
    """257 booleans: which next bytes (and end of text) keep `data` on a valid UTF-8 path.

    Only the incomplete last character of `data` matters; invalid bytes earlier
    (a user's prompt) are not repaired, just not added to.
    """
    import numpy as np

    return np.array(_allowed_after(data[len(data) - incomplete_tail(data) :]), dtype=bool)
