"""A direct, non-causal reading of the HAT splitting rule (UAX #29 via `regex`'s (?w) boundaries, with
look-ahead), written from its seven-step description, to compare the causal splitter against."""
from __future__ import annotations

import regex

_WS = regex.compile(r"[\p{Z}\t\r\n\f]")
_P = regex.compile(r"\p{P}")


def reference_split(text: str) -> list[str]:
    chunks = [c for c in regex.split(r"(?w)\b", text) if c]
    chunks = [p for c in chunks for p in regex.split(r"(\p{P})", c) if p]
    chunks = [p for c in chunks for p in regex.split(r"(?<=\p{Ll})(?=\p{Lu})", c) if p]
    merged: list[str] = []
    for c in chunks:  # runs of single-space chunks merge
        if c == " " and merged and set(merged[-1]) == {" "}:
            merged[-1] += c
        else:
            merged.append(c)
    words, i = [], 0
    while i < len(merged):
        c = merged[i]
        if _WS.match(c) and c != " ":
            words.append(c)
            i += 1
            continue
        word = ""
        if c == " ":
            word, i = c, i + 1
        if i < len(merged) and not _WS.match(merged[i]) and not _P.match(merged[i]):
            word, i = word + merged[i], i + 1
        while i < len(merged) and _P.match(merged[i]):
            word, i = word + merged[i], i + 1
        words.append(word)
    return words
