"""Exact log2-probabilities of bytes under any `ByteModel`, and bits per byte over texts.

For a `TokenByteModel` the score is the exact marginal of the definitions in
`exact/`: `log2 P(prefix + text) / P(prefix)`, where `P(x)` sums the
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

from .progress import progress as tqdm

from .exact import EOT, ByteModel, ExactByteState

LN2 = math.log(2.0)


def _log_mass(state: ExactByteState, end: bool) -> float:
    return state.trunk_logp + (state.log_end_mass() if end else state.log_prefix_mass())


def score_bytes(bm: ByteModel, text: bytes, prefix: bytes = b"", end: bool = False, progress: bool | None = None) -> float:
    """log2 P(text | prefix), in bits (<= 0; with `end`, of text followed by end of text).

    The cost in bits is its negation; `bits_per_byte` divides that by the length.
    """
    for name, value in (("text", text), ("prefix", prefix)):
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{name} must be bytes, got {type(value).__name__}; use .encode('utf-8')")
    state = bm.start(bytes(prefix))
    bar = tqdm(total=len(text), unit="B", unit_scale=True, disable=progress is False and True or
               (progress is None and len(text) < 4096), desc="scoring", leave=False)
    if isinstance(state, ExactByteState):
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
    if not isinstance(bm, ByteModel):
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
    the mass of the other covers of the last bytes, so it is never larger. A text
    whose tokens do not fit in the model's context window raises ValueError.
    """
    import torch

    core = bm.core
    ids = list(core.vocab.encode(text))
    if not ids:
        raise ValueError("plain_token_bits: empty text")
    seq = [core.start_id] + ids + ([core.eos_ids[0]] if end and core.eos_ids else [])
    lm = core.lm
    limit = lm.max_positions
    if limit is not None and len(seq) > limit:  # refused, as score_bytes refuses: positions past it mean nothing
        raise ValueError(f"plain_token_bits: the text needs {len(seq)} tokens (with the start token) but the "
                         f"model's context window is {limit}; score a shorter text, or use token_bits_per_byte "
                         "(which reads long texts in windows)")
    logits, _ = lm._forward(torch.tensor([seq]), None)
    lp = torch.log_softmax(logits[0, :-1].double(), -1)
    total = float(lp.gather(1, torch.tensor(seq[1:]).unsqueeze(1)).sum())
    return PlainBits(-total / LN2, len(ids))


def document_start_id(vocab) -> int:
    """`vocab.start_id`: the token every model here reads a document after (see ByteVocab.start_id)."""
    return vocab.start_id


def token_bits_per_byte(model, tokenizer, texts: Iterable[bytes], window: int = 512, progress: bool = True) -> dict:
    """Bits per byte of the plain tokenization: what a token LM is usually judged by.

    Each text is encoded canonically and cut into windows of `window` tokens,
    each read after the document start token (`document_start_id`); bits are
    summed over every token and divided by the texts' bytes, so models with
    different tokenizers are compared on the same bytes. Returns bits_per_byte,
    tokens, bytes and the per-token perplexity (TokenAdapt's metric).
    """
    import torch

    from .vocab import ByteVocab

    vocab = ByteVocab.of(tokenizer)
    start = document_start_id(vocab)
    device = next(model.parameters()).device
    bits = 0.0
    n_tokens = n_bytes = 0
    texts = list(texts)
    chunks = []
    for text in texts:
        ids = vocab.encode(text, strict=False)
        n_bytes += len(text)
        n_tokens += len(ids)
        chunks += [ids[lo : lo + window] for lo in range(0, len(ids), window)]
    if not n_bytes:
        raise ValueError("token_bits_per_byte: no bytes to score")
    with torch.no_grad():
        for chunk in tqdm(chunks, desc="token bits", disable=not progress or len(chunks) < 4, leave=False):
            seq = torch.tensor([[start, *chunk]], device=device)
            logits = model(input_ids=seq).logits[0, :-1, : len(vocab.pieces)].double()
            lp = torch.log_softmax(logits, -1)
            bits -= float(lp.gather(1, seq[0, 1:, None]).sum()) / LN2
    return {"bits_per_byte": bits / n_bytes, "tokens": n_tokens, "bytes": n_bytes,
            "token_perplexity": 2 ** (bits / n_tokens), "bytes_per_token": n_bytes / n_tokens}
