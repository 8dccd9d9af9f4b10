"""Exact log2-probabilities of bytes under any `ByteModel`, and bits per byte over texts.

For a `TokenByteModel` the score is the exact marginal of the definitions in
`exact.py`: `log2 P(prefix + text) / P(prefix)`, where `P(x)` sums the
canonical covers of `x` (`end=True` uses `P(x, end of text)` instead). It
telescopes, so `score(x + y) == score(x) + score(y, prefix=x)` holds exactly,
and only the covers that survive to the end need checking, which makes it
cheap. The normalised next-byte distributions differ from ratios of `P` by the
invalid mass (the model's mass on non-canonical sequences); when that is zero
the two agree, and for byte-native models (no invalid mass) the score is the
sum of `log2 next_byte_logprobs`.
"""
from __future__ import annotations

import math
from typing import Iterable

from tqdm.auto import tqdm

from .exact import EOT

LN2 = math.log(2.0)


def _log_mass(state, end: bool) -> float:
    return state.trunk_logp + (state._end_logmass() if end else state.log_prefix_mass())


def score_bytes(bm, text: bytes, prefix: bytes = b"", end: bool = False, progress: bool | None = None) -> float:
    """log2 P(text | prefix), in bits (<= 0; with `end`, of text followed by end of text).

    The cost in bits is its negation; `bits_per_byte` divides that by the length.
    """
    for name, value in (("text", text), ("prefix", prefix)):
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{name} must be bytes, got {type(value).__name__}; use .encode('utf-8')")
    state = bm.start(bytes(prefix))
    bar = tqdm(total=len(text), unit="B", unit_scale=True, disable=progress is False and True or
               (progress is None and len(text) < 4096), desc="scoring", leave=False)
    exact = hasattr(state, "log_prefix_mass")
    if exact:
        before = _log_mass(state, False)
        for i, byte in enumerate(text):
            if not state.ready():  # evaluate the next 32 bytes' sequences in one batched call
                state.prefetch(text[i : i + 32])
            state.advance(byte)
            bar.update(1)
        bar.close()
        after = _log_mass(state, end)
        log2p = (after - before) / LN2
        if math.isinf(log2p):
            raise ValueError(f"the text has probability 0 under this model (at {text[-20:]!r})")
        return log2p
    log2p = 0.0
    for byte in text:
        log2p += float(state.logprobs()[byte]) / LN2
        state.advance(byte)
        bar.update(1)
    if end:
        log2p += float(state.logprobs()[EOT]) / LN2
    bar.close()
    return log2p


def bits_per_byte(model_or_bm, texts: Iterable[bytes], tokenizer=None, end: bool = False,
                  progress: bool = True) -> float:
    """Total bits over total bytes of `texts`, each scored as a document from its start.

    `model_or_bm` is a `ByteModel`, or a Hugging Face causal LM with `tokenizer`
    (wrapped in a `TokenByteModel`).
    """
    bm = model_or_bm
    if not hasattr(bm, "start"):
        if tokenizer is None:
            raise ValueError("bits_per_byte: pass tokenizer= with a token model, or a ByteModel")
        from .exact import TokenByteModel

        bm = TokenByteModel(model_or_bm, tokenizer)
    texts = list(texts)
    if not texts or not sum(len(t) for t in texts):
        raise ValueError("bits_per_byte: no bytes to score")
    bits = 0.0
    for text in tqdm(texts, desc="bits/byte", disable=not progress or len(texts) < 2):
        bits -= score_bytes(bm, text, end=end, progress=progress)
    return bits / sum(len(t) for t in texts)


class PlainBits:
    """Bits of the one canonical tokenization (the number token LMs usually report)."""

    def __init__(self, bits: float, tokens: int):
        self.bits, self.tokens = bits, tokens


def plain_token_bits(bm, text: bytes, end: bool = False) -> PlainBits:
    """-log2 P(encode(text)) under the token model behind a `TokenByteModel` (one forward).

    As a prefix probability (no EOS unless `end`): the exact `score_bytes` adds
    the mass of the other covers of the last bytes, so it is never larger.
    """
    import torch

    core = bm.core
    ids = list(core.vocab.encode(text))
    if not ids:
        raise ValueError("plain_token_bits: empty text")
    seq = [core.start_id] + ids + ([core.eos_ids[0]] if end and core.eos_ids else [])
    lm = core.lm
    logits, _ = lm._forward(torch.tensor([seq]), None)
    lp = torch.log_softmax(logits[0, :-1].double(), -1)
    total = float(lp.gather(1, torch.tensor(seq[1:]).unsqueeze(1)).sum())
    return PlainBits(-total / LN2, len(ids))
