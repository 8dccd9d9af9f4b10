"""Fill-in-the-middle training documents (Bavarian et al. 2022, "Efficient Training of
Language Models to Fill in the Middle").

With probability `rate` a document is cut at two character positions drawn
uniformly, into prefix, middle and suffix, and rewritten with the FIM tokens:

- PSM: `<PRE> prefix <SUF> suffix <MID> middle` (each part encoded on its own);
- SPM: `<PRE> <SUF> suffix <MID> prefix middle` (prefix and middle encoded as one
  text: at inference `bytelevel.fim` continues the prefix bytes, so the middle
  must read as their continuation).

The document's end-of-text follows as usual (packing adds it). Among FIM
documents a fraction `spm_rate` is SPM (the paper trains on both, 50/50).
`fim_recover` undoes the rewrite, which the tests use to show nothing is lost.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int


def fim_split(text: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) at two uniform character positions (Bavarian et al., section 3)."""
    a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
    return text[:a], text[a:b], text[b:]


def fim_document(text: str, encode: Callable[[str], list[int]], tokens: FimTokens, rate: float,
                 spm_rate: float, rng: random.Random) -> list[int]:
    """The ids of one training document: FIM-rewritten with probability `rate`, else `encode(text)`."""
    if not 0 <= rate <= 1 or not 0 <= spm_rate <= 1:
        raise ValueError(f"fim rates are probabilities in [0, 1], got rate={rate}, spm_rate={spm_rate}")
    if rate == 0 or rng.random() >= rate:
        return encode(text)
    prefix, middle, suffix = fim_split(text, rng)
    if rng.random() < spm_rate:
        return [tokens.prefix, tokens.suffix, *encode(suffix), tokens.middle, *encode(prefix + middle)]
    return [tokens.prefix, *encode(prefix), tokens.suffix, *encode(suffix), tokens.middle, *encode(middle)]


def fim_recover(ids: Sequence[int], tokens: FimTokens, decode: Callable[[Sequence[int]], bytes]) -> bytes:
    """The original document's bytes from `fim_document`'s ids (plain documents decode as they are)."""
    ids = list(ids)
    if not ids or ids[0] != tokens.prefix:
        return decode(ids)
    mid = ids.index(tokens.middle)
    if ids[1] == tokens.suffix:  # SPM
        return decode(ids[mid + 1 :]) + decode(ids[2:mid])
    suf = ids.index(tokens.suffix)
    return decode(ids[1:suf]) + decode(ids[mid + 1 :]) + decode(ids[suf + 1 : mid])
