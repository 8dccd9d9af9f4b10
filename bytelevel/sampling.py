"""Generate bytes from any `ByteModel`, one exact byte at a time.

`generate_bytes` works with every `ByteModel`. With a `TokenByteModel` it
samples speculatively and still exactly: it drafts a whole token from the
covers (no model call), evaluates the covers at every byte boundary inside it
in one batched forward, then keeps or corrects each drafted byte with the
speculative-sampling test against the exact byte distribution. An accepted
draft costs one forward pass, as a token does; a rejected byte costs one more. Temperature and top-p act on the
257-slot byte distribution (log space), not on tokens.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np

from .ensemble import EnsembleState
from .exact import EOT, ByteModel, ByteState, ExactByteState, pick
from .utf8 import utf8_allowed


def generate_bytes(
    bm: ByteModel,
    prefix: bytes,
    max_bytes: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Sequence[bytes] | bytes | None = None,
    utf8: bool = True,
    state: ByteState | None = None,
) -> bytes:
    """Continue `prefix` by up to `max_bytes` bytes; returns the new bytes only.

    Stops at end of text, at `max_bytes`, or after any of `stop` (the stop bytes
    are dropped from the result). With `utf8=True` it never emits a byte that
    makes the output invalid UTF-8 (and ends only after a complete character):
    the distribution is conditioned on that, not patched afterwards. `seed`
    makes it reproducible; `temperature=0` is greedy. Pass `state` to continue
    from an existing state (it is advanced in place).
    """
    if not isinstance(prefix, (bytes, bytearray)):
        raise TypeError(f"prefix must be bytes, got {type(prefix).__name__}; use text.encode('utf-8')")
    check_sampling(max_bytes, temperature, top_p)
    stops = [stop] if isinstance(stop, (bytes, bytearray)) else list(stop or [])
    rng = random.Random(seed)
    state = bm.start(bytes(prefix)) if state is None else state
    data, out = bytes(prefix), bytearray()
    exact = isinstance(state, ExactByteState)
    speculate = exact and temperature > 0 and top_p >= 1.0
    draft, laws, j = b"", [], 0
    for _ in range(max_bytes):
        allowed = utf8_allowed(data) if utf8 else None
        if speculate:
            if j >= len(draft):  # draft a token from the covers, evaluate its byte boundaries in one call
                draft, laws = state.propose(rng.random(), temperature)
                j = 0
                state.prefetch(draft)
            if j < len(draft):
                byte = state.sample_against(draft[j], laws[j], rng.random(), rng.random(), temperature, allowed)
                j = j + 1 if byte == draft[j] else len(draft) + 1
                if j > len(draft):
                    draft = b""
            else:
                byte = state.sample(rng.random(), temperature, top_p, allowed)
        elif exact:
            state.prefetch(state.likeliest_path())  # one batched call per token, not per byte
            byte = state.sample(rng.random(), temperature, top_p, allowed)
        elif isinstance(state, EnsembleState):  # bounds-first: members refine only as far as the pick needs
            byte = state.sample(rng.random(), temperature, top_p, allowed)
        else:
            byte = pick(state.logprobs(), rng.random(), temperature, top_p, allowed)
        if byte == EOT:
            break
        state.advance(byte)
        data += bytes([byte])
        out.append(byte)
        hit = next((s for s in stops if s and out.endswith(s)), None)
        if hit is not None:
            del out[len(out) - len(hit) :]
            break
    return bytes(out)


def check_sampling(max_bytes: int, temperature: float, top_p: float) -> None:
    """Raise ValueError on a length or sampling setting no distribution can honour.

    NaN or infinite temperatures would turn the byte distribution into NaNs (and so into
    invalid UTF-8 or an empty text), so they are refused rather than clamped.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not math.isfinite(top_p) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def sample_distribution(bm: ByteModel, prefix: bytes, draws: int, seed: int = 0, **kw) -> np.ndarray:
    """Empirical next-slot frequencies from `draws` one-byte samples (a test helper)."""
    counts = np.zeros(257)
    rng = random.Random(seed)
    for _ in range(draws):
        state = bm.start(prefix)
        u = rng.random()
        slot = state.sample(u, **kw) if isinstance(state, ExactByteState) else pick(state.logprobs(), u, **kw)
        counts[slot] += 1
    return counts / draws
