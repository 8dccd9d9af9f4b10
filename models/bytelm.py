"""ByteLM: a flat transformer over bytes, the baseline HAT must beat on speed.

Same blocks as HAT (`layers.py`), one layer stack over every byte, no words.
Its cost per byte is that of the full stack, which is why HAT's backbone over
words (~5 bytes each in English) trains faster at equal parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BOS, VOCAB, CachedByteState, PretrainedByteLM
from .layers import BlockStack, KVCache, RMSNorm, causal_segment_mask, check_sizes, init_weights, segments_from_bos


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
        check_sizes(self, ("d_model", "n_layers", "n_heads", "max_bytes"))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class ByteLM(PretrainedByteLM):
    model_type = "bytelm"
    config_class = ByteLMConfig

    def __init__(self, config: ByteLMConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(VOCAB, c.d_model)
        self.blocks = BlockStack(c.n_layers, c.d_model, c.n_heads, c.mlp_ratio, c.rope_theta)
        self.norm = RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, VOCAB, bias=False)
        init_weights(self, c.init_std)

    def run(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
            caches: list[KVCache] | None = None) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(ids), positions, mask, caches)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) packed rows (documents start with BOS) -> logits (B, T, 257)."""
        segments, positions = segments_from_bos(ids, BOS)
        return self.run(ids, positions, causal_segment_mask(segments))

    def start(self, prefix: bytes = b"") -> "ByteLMState":
        return ByteLMState(self, prefix)


class ByteLMState(CachedByteState):
    """Incremental ByteLM with a KV cache per layer."""

    def _setup(self) -> None:
        self.caches = self.model.blocks.new_caches()

    def _step(self, ids: list[int], x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.run(x, positions, None, self.caches)
