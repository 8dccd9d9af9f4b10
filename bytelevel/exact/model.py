"""`TokenByteModel`: the exact `ByteModel` over a tokenized LM, and the tables its states share."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch

from ..pretok import letter_cuts_supported
from ..trie import TokenTrie
from ..vocab import ByteVocab
from .base import CoverState, Core
from .canonical import TokenByteState
from .cover import token_tables
from .hf import HFTokenLM
from .protocols import NextTokenScorer, TokenTreeScorer
from .reference import AllTokenizationsState

# the state class of each definition of the covers (see the package docstring)
STATES: dict[str, type[CoverState]] = {"canonical": TokenByteState, "all": AllTokenizationsState}


class RowTreeScorer:
    """A `TokenTreeScorer` made of any `NextTokenScorer`: trees and trunk growth as rows of `logprobs`.

    One `logprobs` call per request, as many rows as the request has prefixes;
    sums run left to right, as the states' own sums do.
    """

    def __init__(self, scorer: NextTokenScorer):
        self.scorer = scorer
        self.vocab_size = int(scorer.vocab_size)

    @property
    def calls(self) -> int:
        return self.scorer.calls

    def logprobs(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> torch.Tensor:
        return self.scorer.logprobs(trunk, tails)

    def logprobs_tree(self, trunk: Sequence[int],
                      tails: Sequence[Sequence[int]]) -> dict[tuple[int, ...], torch.Tensor]:
        need = sorted({tuple(t[:i]) for t in tails for i in range(len(t) + 1)}, key=len)
        return dict(zip(need, self.scorer.logprobs(trunk, need)))

    def extend(self, trunk: Sequence[int], delta: Sequence[int]) -> tuple[float, torch.Tensor]:
        delta = tuple(delta)
        rows = self.scorer.logprobs(trunk, [delta[:i] for i in range(len(delta) + 1)])
        total = 0.0
        for i, t in enumerate(delta):
            total += float(rows[i][t])
        return total, rows[-1]


def token_scorer(model: Any, dtype: torch.dtype, device: str | torch.device) -> TokenTreeScorer:
    """The scorer behind a `TokenByteModel`: a Hugging Face module is wrapped in `HFTokenLM`."""
    if isinstance(model, HFTokenLM):
        return model
    if isinstance(model, torch.nn.Module):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return HFTokenLM(model.to(device=device, dtype=dtype), device)
    if isinstance(model, NextTokenScorer):
        return RowTreeScorer(model)
    raise TypeError(f"model must be a Hugging Face causal LM (a torch module) or a NextTokenScorer "
                    f"(vocab_size, calls, logprobs(trunk, tails)), got {type(model).__name__}")


class TokenByteModel:
    """Exact `ByteModel` over any tokenized causal LM (see the package docstring).

    `model` is a Hugging Face causal LM (or any `NextTokenScorer`), `tokenizer`
    anything `ByteVocab.from_tokenizer` reads. `tokenizations="all"` sums over
    every tokenization instead of the canonical ones (a reference for tiny vocabularies).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        tokenizations: Literal["canonical", "all"] = "canonical",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "auto",
        start_id: int | None = None,
        eos_ids: Sequence[int] | None = None,
    ):
        if tokenizations not in STATES:
            raise ValueError(f"tokenizations must be 'canonical' or 'all', got {tokenizations!r}")
        vocab = ByteVocab.of(tokenizer)
        vocab.require_lossless("TokenByteModel")
        lm = token_scorer(model, dtype, device)
        if lm.vocab_size < len(vocab):
            raise ValueError(
                f"the model has {lm.vocab_size} output rows but the tokenizer has {len(vocab)} ids: "
                "they do not belong together (pass the tokenizer the model was trained with)"
            )
        start = start_id if start_id is not None else vocab.start_id
        eos = list(eos_ids) if eos_ids is not None else [vocab.eos_id] if vocab.eos_id is not None else []
        tables = token_tables(vocab.pieces, lm.vocab_size)
        self.core = Core(vocab, lm, TokenTrie(vocab.pieces), tables.table, tables.lengths,
                         np.flatnonzero(tables.lengths), tables.probes, start, eos, letter_cuts_supported(vocab))
        self.vocab = vocab
        self.state_class = STATES[tokenizations]

    # -- ByteModel ----------------------------------------------------------------------------
    def start(self, prefix: bytes = b"", context: Sequence[int] = (), end_ids: Sequence[int] | None = None,
              raw: bool = False) -> CoverState:
        """The state after `prefix`. `context`: token ids the model reads after the
        start token and before the bytes (a FIM prompt, a chat template); `end_ids`:
        the tokens that end the text there (default: the tokenizer's EOS); `raw`:
        no SentencePiece dummy prefix before the bytes (text that continues a context)."""
        if not isinstance(prefix, (bytes, bytearray)):
            raise TypeError(f"prefix must be bytes, got {type(prefix).__name__}; use text.encode('utf-8')")
        size = self.core.lm.vocab_size
        bad = [t for t in list(context) + list(end_ids or []) if not 0 <= int(t) < size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the model's vocabulary of {size}")
        return self.state_class(self.core, bytes(prefix), [int(t) for t in context],
                                None if end_ids is None else [int(t) for t in end_ids], raw)

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor:
        return self.start(prefix).logprobs()

    @property
    def forward_calls(self) -> int:
        return self.core.lm.calls
