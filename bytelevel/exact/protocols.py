"""The interfaces byte-level code is written against.

- `ByteModel` / `ByteState`: anything that gives the next-byte distribution
  (256 bytes + end of text), incrementally. Byte-native models (models/) and
  ensembles implement just these.
- `ExactByteState`: what the exact states over a tokenized LM add (prefix and
  end mass for scoring, certified bounds for ensembles, lazy and speculative
  sampling). Callers ask `isinstance(state, ExactByteState)` once, instead of
  probing for each method.
- `NextTokenScorer`: what `TokenByteModel` needs from a token LM, for models
  that are not Hugging Face modules (test chains, remote scorers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from .bounds import DistributionBounds

EOT = 256  # index of the end-of-text slot in a next-byte distribution


@runtime_checkable
class ByteState(Protocol):
    """The distribution after the bytes read so far; `advance` reads one more."""

    def logprobs(self) -> torch.Tensor:
        """(257,) log-probs of the next byte (0-255) or end of text (`EOT`); logsumexp == 0."""
        ...

    def advance(self, byte: int) -> None: ...


@runtime_checkable
class ByteModel(Protocol):
    """Anything that gives the next-byte distribution (256 bytes + end of text)."""

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor: ...
    def start(self, prefix: bytes = b"") -> ByteState: ...


@runtime_checkable
class ExactByteState(ByteState, Protocol):
    """A `ByteState` over the covers of a tokenized LM (`TokenByteModel.start`).

    Masses are natural logs relative to the trunk: `trunk_logp + log_prefix_mass()`
    is log P(bytes so far); `trunk_logp + log_end_mass()` is log P(bytes, end of text).
    """

    trunk_logp: float  # log P(trunk tokens after the start token)
    invalid_mass: float  # mass on non-canonical continuations, set by logprobs()

    def log_prefix_mass(self) -> float: ...
    def log_end_mass(self) -> float: ...
    def bounds(self) -> DistributionBounds: ...

    def sample(self, u: float, temperature: float = 1.0, top_p: float = 1.0,
               allowed: np.ndarray | None = None) -> int: ...

    def propose(self, u: float, temperature: float = 1.0) -> tuple[bytes, list[np.ndarray]]: ...

    def sample_against(self, proposed: int, law: np.ndarray, u_accept: float, u_residual: float,
                       temperature: float = 1.0, allowed: np.ndarray | None = None) -> int: ...

    def prefetch(self, path: bytes, *more: bytes) -> None: ...
    def ready(self) -> bool: ...
    def likeliest_path(self) -> bytes: ...


@runtime_checkable
class NextTokenScorer(Protocol):
    """A token LM as `TokenByteModel` reads it: log-probs after `trunk + tail` for many tails."""

    vocab_size: int
    calls: int  # model calls so far (the cost measure tests and benchmarks read)

    def logprobs(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> torch.Tensor:
        """(len(tails), vocab_size) float64 log-softmax of the next token after `trunk + tail`."""
        ...


class TokenTreeScorer(NextTokenScorer, Protocol):
    """What the exact states call: a `NextTokenScorer` that also scores token trees and
    grows its trunk. `HFTokenLM` does both in one forward each; `model.RowTreeScorer`
    gives any `NextTokenScorer` them by rows."""

    def logprobs_tree(self, trunk: Sequence[int],
                      tails: Sequence[Sequence[int]]) -> dict[tuple[int, ...], torch.Tensor]:
        """Next-token log-probs after `trunk + p` for every prefix `p` of every tail (`()` included)."""
        ...

    def extend(self, trunk: Sequence[int], delta: Sequence[int]) -> tuple[float, torch.Tensor]:
        """(log P(delta | trunk), next-token log-probs after `trunk + delta`)."""
        ...
