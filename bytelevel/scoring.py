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
from typing import Iterable, Iterator, Sequence

from .progress import progress as tqdm

from .exact import EOT, ByteModel, ExactByteState, TokenByteModel, TokenByteState
from .pretok import canonical_encode, stable_cuts

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


def score_texts(bm: ByteModel, texts: Sequence[bytes], prefix: bytes = b"", end: bool = False,
                batch_size: int = 8, progress: bool | None = None) -> list[float]:
    """`score_bytes(bm, text, prefix, end)` of each text, with the model run on `batch_size` texts at once.

    Why this is exact and cheap: every canonical cover of a text starts with the
    canonical encoding of its bytes before the last stable cut (pretok.py), so
    that part's probability is the plain token probability: one batched forward
    for many texts (`HFTokenLM.extend_each`). Only the bytes after the cut go
    through the cover sums, in a state started there with the trunk as its
    context. Byte models without canonical cuts (ensembles, byte-native models,
    `tokenizations="all"`) are scored text by text with `score_bytes`.
    """
    texts = list(texts)
    for value in [prefix, *texts]:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"texts and prefix must be bytes, got {type(value).__name__}; use .encode('utf-8')")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(bm, TokenByteModel) and bm.state_class is TokenByteState):
        return [score_bytes(bm, t, prefix=prefix, end=end, progress=False) for t in
                tqdm(texts, desc="scoring", disable=progress is False or len(texts) < 2, leave=False)]
    core = bm.core
    before = _log_mass(bm.start(bytes(prefix)), False)
    datas = [core.vocab.prefix_bytes + bytes(prefix) + bytes(t) for t in texts]
    cuts = [(stable_cuts(core.vocab, d) or [0])[-1] for d in datas]
    trunks = [[core.start_id, *canonical_encode(core.vocab, d[:c])] for d, c in zip(datas, cuts)]
    order = sorted(range(len(texts)), key=lambda i: -len(trunks[i]))  # longest first: memory fails early
    out = [0.0] * len(texts)
    bar = tqdm(total=sum(map(len, texts)), unit="B", unit_scale=True, desc="scoring", leave=False,
               disable=progress is False or (progress is None and sum(map(len, texts)) < 4096))
    for lo in range(0, len(order), batch_size):
        batch = order[lo : lo + batch_size]
        for i, logp in zip(batch, _grow_trunks(core.lm, [trunks[i] for i in batch])):
            # the lm's trunk is now trunks[i]: the state's own calls reuse its cache
            state = bm.start(datas[i][cuts[i]:], context=trunks[i][1:], raw=True)
            log2p = (logp + _log_mass(state, end) - before) / LN2
            if math.isinf(log2p):
                raise ValueError(f"the text has probability 0 under this model (at {texts[i][-20:]!r})")
            out[i] = log2p
            bar.update(len(texts[i]))
    bar.close()
    return out


def _grow_trunks(lm, trunks: list[list[int]]) -> Iterator[float]:
    """log P(trunk[1:] | trunk[0]) of each trunk, each made the lm's current trunk when it is yielded:
    one batched forward with `extend_each` where the scorer has it, else one `extend` each."""
    each = getattr(lm, "extend_each", None)
    if each is not None:
        yield from each(trunks)
        return
    for trunk in trunks:
        yield lm.extend(trunk[:1], trunk[1:])[0] if len(trunk) > 1 else 0.0


def bits_per_byte(model_or_bm, texts: Iterable[bytes], tokenizer=None, end: bool = False,
                  progress: bool = True, batch_size: int = 8) -> float:
    """Total bits over total bytes of `texts`, each scored as a document from its start (`score_texts`).

    `model_or_bm` is a `ByteModel`, or a Hugging Face causal LM with `tokenizer`
    (wrapped in a `TokenByteModel`).
    """
    bm = model_or_bm
    if not isinstance(bm, ByteModel):
        if tokenizer is None:
            raise ValueError("bits_per_byte: pass tokenizer= with a token model, or a ByteModel")
        bm = TokenByteModel(model_or_bm, tokenizer)
    texts = list(texts)
    if not texts or not sum(len(t) for t in texts):
        raise ValueError("bits_per_byte: no bytes to score")
    bits = -sum(score_texts(bm, texts, end=end, batch_size=batch_size, progress=progress))
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


def token_bits_per_byte(model, tokenizer, texts: Iterable[bytes], window: int = 512, progress: bool = True,
                        batch_size: int = 8) -> dict:
    """Bits per byte of the plain tokenization: what a token LM is usually judged by.

    Each text is encoded canonically and cut into windows of `window` tokens,
    each read after the document start token (`document_start_id`); bits are
    summed over every token and divided by the texts' bytes, so models with
    different tokenizers are compared on the same bytes. Windows run
    `batch_size` at a time (`exact.hf.run_rows`). Returns bits_per_byte,
    tokens, bytes, the per-token perplexity (TokenAdapt's metric) and each
    text's bits (`text_bits`).
    """
    from .exact.hf import HFTokenLM, run_rows
    from .vocab import ByteVocab

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    vocab = ByteVocab.of(tokenizer)
    start = document_start_id(vocab)
    training = model.training
    lm = HFTokenLM(model)  # puts the model in eval mode: restored below
    n_tokens = n_bytes = 0
    texts = list(texts)
    chunks = []
    for i, text in enumerate(texts):
        ids = vocab.encode(text, strict=False)
        n_bytes += len(text)
        n_tokens += len(ids)
        chunks += [(i, [start, *ids[lo : lo + window]]) for lo in range(0, len(ids), window)]
    if not n_bytes:
        raise ValueError("token_bits_per_byte: no bytes to score")
    chunks.sort(key=lambda c: len(c[1]), reverse=True)
    batches = [chunks[lo : lo + batch_size] for lo in range(0, len(chunks), batch_size)]
    text_bits = [0.0] * len(texts)
    try:
        for batch in tqdm(batches, desc="token bits", disable=not progress or len(chunks) < 4, leave=False):
            totals = run_rows(lm._forward, [seq for _, seq in batch], lm.vocab_size, columns=len(vocab.pieces),
                              windowed=lm.window is None)[0]
            for (i, _), nats in zip(batch, totals):
                text_bits[i] -= nats / LN2
    finally:
        model.train(training)
    bits = sum(text_bits)
    return {"bits_per_byte": bits / n_bytes, "tokens": n_tokens, "bytes": n_bytes,
            "token_perplexity": 2 ** (bits / n_tokens), "bytes_per_token": n_bytes / n_tokens,
            "text_bits": text_bits}
