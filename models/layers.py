"""The blocks every model in `models/` is built from (Llama-style, written once).

RMSNorm, rotary position embeddings (RoPE), the SwiGLU MLP, causal
self-attention that keeps packed documents apart and has a KV cache for
generation, cross-attention (the HAT word pooling), the pre-norm block and
the stack of them every model runs, and the size checks of the configs.
Follows the Llama recipe (Touvron et al. 2023) as nanoGPT/litgpt write it.
Not here: grouped-query attention, dropout, sliding windows (tiny CPU models
do not need them).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight: LayerNorm without centring (cheaper, as good for LMs)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each `positions.shape + (head_dim // 2,)`, for `apply_rope`.

    Positions are explicit so packed documents each count from 0.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head size, got {head_dim}")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :h/2], x[..., h/2:]) of x (B, H, T, h) by the angles (B, T, h/2)."""
    if x.dim() != 4:
        raise ValueError(f"apply_rope expects (B, H, T, head_dim), got shape {tuple(x.shape)}")
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)  # (B, 1, T, h/2)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) (Shazeer 2020), the Llama MLP."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class KVCache:
    """Keys and values seen so far, (1, H, T, h) each; grows by `append`."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]


def causal_segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) boolean: query i may read key j iff j <= i and both are in the same segment.

    Example: segments [[0, 0, 1]] -> row 2 reads only itself (a packed document
    never sees the one before it).
    """
    T = segments.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (causal & same)[:, None]


class SelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE; a packing mask in training, a KV cache when generating."""

    def __init__(self, dim: int, n_heads: int, rope_theta: float = 10000.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads, self.head_dim, self.rope_theta = n_heads, dim // n_heads, rope_theta
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None,
                cache: KVCache | None = None, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x (B, T, C), positions (B, T); `mask` (B, 1, T, T) in training, or `cache` (B = 1) when stepping.

        With a cache, the new positions attend to everything cached plus
        themselves causally (no mask needed: one document). `rope`: the
        `rope_angles` of `positions`, when the caller made them already.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, T, h)
        cos, sin = rope if rope is not None else rope_angles(positions, self.head_dim, self.rope_theta)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)
            if T > 1:  # a prefill: causal within the new positions, all of the past
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and cache is None)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class CrossAttention(nn.Module):
    """Queries from one stream read keys/values from another (HAT: a word's query reads its bytes).

    `dim` is the query (and output) width, `kv_dim` the width of what is read.
    No positions: the keys' order is in their content (the encoder is causal).
    """

    def __init__(self, dim: int, kv_dim: int, n_heads: int):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(kv_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, Q, dim), kv (N, K, kv_dim), mask (N, 1, Q, K) or (N, 1, 1, K) boolean -> (N, Q, dim)."""
        N, Q, C = x.shape
        K = kv.shape[1]
        q = self.q(x).view(N, Q, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(kv).view(N, K, 2, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(N, Q, C))

    def pool(self, query: torch.Tensor, kv: torch.Tensor, group: torch.Tensor, n: int) -> torch.Tensor:
        """One query (dim,) read by n groups of keys: kv (K, kv_dim), group (K,) in 0..n-1 -> (n, dim).

        The same maths as `forward` with that query repeated n times and group g's
        keys padded to the longest (masked), but each key is projected once and no
        padding is made: per head, a softmax over each group's scores (index ops).
        Every group needs at least one key.
        """
        H, h = self.n_heads, self.head_dim
        K = kv.shape[0]
        q = self.q(query[None]).view(H, h)
        k, v = self.kv(kv).view(K, 2, H, h).unbind(1)
        scores = (k * q).sum(-1) * (1.0 / math.sqrt(h))  # (K, H)
        at = group[:, None].expand(K, H)
        top = scores.new_full((n, H), -math.inf).scatter_reduce_(0, at, scores.detach(), "amax")
        e = (scores - top[group]).exp()  # the max only keeps exp in range: its gradient cancels
        total = e.new_zeros(n, H).index_add_(0, group, e)
        y = v.new_zeros(n, H, h).index_add_(0, group, (e / total[group])[..., None] * v)
        return self.out(y.reshape(n, H * h))


class Block(nn.Module):
    """Pre-norm transformer layer: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 8 / 3, rope_theta: float = 10000.0):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = SelfAttention(dim, n_heads, rope_theta)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, _hidden(dim, mlp_ratio))

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None,
                cache: KVCache | None = None, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), positions, mask, cache, rope)
        return x + self.mlp(self.norm2(x))


class BlockStack(nn.ModuleList):
    """`n` Blocks run in turn, with a KV cache each when generating: the layer loop of every model.

    A ModuleList, so the weights keep their keys (`encoder.0.attn.qkv.weight`) in saved models.
    """

    def __init__(self, n: int, dim: int, n_heads: int, mlp_ratio: float = 8 / 3, rope_theta: float = 10000.0):
        super().__init__(Block(dim, n_heads, mlp_ratio, rope_theta) for _ in range(n))

    def new_caches(self) -> list[KVCache]:
        """One empty cache per layer, for `forward(..., caches)`."""
        return [KVCache() for _ in self]

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None,
                caches: list[KVCache] | None = None, adds: Iterable[torch.Tensor] | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C); `mask` in training, or `caches` (one per layer) when stepping.

        `adds`: one tensor per layer added to its input (HAT's word context), drawn just
        before that layer runs, so a generator computes each only when it is needed.
        """
        extra = None if adds is None else iter(adds)
        attn = self[0].attn  # the layers share head size and theta: their RoPE angles are made once
        rope = rope_angles(positions, attn.head_dim, attn.rope_theta)
        for i, block in enumerate(self):
            if extra is not None:
                x = x + next(extra)
            x = block(x, positions, mask, caches[i] if caches else None, rope)
        return x


def check_sizes(config: Any, names: Iterable[str]) -> None:
    """ValueError naming the first of `names` (sizes, layer counts) below 1: a YAML config may give 0."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 1, got {getattr(config, name)}")


def _hidden(dim: int, ratio: float) -> int:
    """SwiGLU width: ratio * dim rounded up to a multiple of 16 (fast matmuls)."""
    return 16 * math.ceil(ratio * dim / 16)


def segments_from_bos(ids: torch.Tensor, bos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(segment, position), each (B, T): every `bos` starts a new segment counted from position 0.

    Rows begin with `bos` in training; a row that does not starts segment 0 anyway.
    Example: [[bos, 5, 6, bos, 7]] -> segments [[1, 1, 1, 2, 2]], positions [[0, 1, 2, 0, 1]].
    """
    start = ids == bos
    segment = start.long().cumsum(1)
    idx = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    first = torch.where(start, idx, torch.zeros_like(idx)).cummax(1).values
    return segment, idx - first


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal(0, std) for linear and embedding weights, zero biases (GPT-2's init)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
