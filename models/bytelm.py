"""ByteLM: a flat transformer over bytes, the baseline HAT must beat on speed.

Same blocks as HAT (`layers.py`), one layer stack over every byte, no words.
Its cost per byte is that of the full stack, which is why HAT's backbone over
words (~5 bytes each in English) trains faster at equal parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import BOS, VOCAB, CachedByteState, PretrainedByteLM
from .layers import Block, KVCache, RMSNorm, causal_segment_mask, init_weights, segments_from_bos


@dataclass
class ByteLMConfig:
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = ratio * width
    max_bytes: int = 8192  # context window in bytes for generation and scoring
    rope_theta: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ByteLMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class ByteLM(PretrainedByteLM):
    model_type = "bytelm"
    config_class = ByteLMConfig

    def __init__(self, config: ByteLMConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(VOCAB, c.d_model)
        self.blocks = nn.ModuleList(Block(c.d_model, c.n_heads, c.mlp_ratio, c.rope_theta) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, VOCAB, bias=False)
        init_weights(self, c.init_std)

    def run(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
            caches: list[KVCache] | None = None) -> torch.Tensor:
        h = self.embed(ids)
        for i, block in enumerate(self.blocks):
            h = block(h, positions, mask, caches[i] if caches else None)
        return self.head(self.norm(h))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) packed rows (documents start with BOS) -> logits (B, T, 257)."""
        segments, positions = segments_from_bos(ids, BOS)
        return self.run(ids, positions, causal_segment_mask(segments))

    def start(self, prefix: bytes = b"") -> "ByteLMState":
        return ByteLMState(self, prefix)


class ByteLMState(CachedByteState):
    """Incremental ByteLM with a KV cache per layer."""

    def _setup(self) -> None:
        self.caches = [KVCache() for _ in range(self.model.config.n_layers)]

    @torch.no_grad()
    def _feed(self, ids: list[int]) -> None:
        model = self.model
        if self.n + len(ids) > model.config.max_bytes:
            raise ValueError(f"the text reached the model's context window of {model.config.max_bytes - 1} bytes")
        x = torch.tensor([ids], device=model.device)
        positions = torch.arange(self.n, self.n + len(ids), device=model.device)[None]
        logits = model.run(x, positions, None, self.caches)
        self._logprobs = F.log_softmax(logits[0, -1].double(), -1)
        self.n += len(ids)
