"""FLEXITOKENS (Owodunni et al. 2025) and its baseline, dynamic token pooling (Nawrot et al. 2023):
a byte LM that learns where its segments end; one model, two boundary losses.

Byte layers feed a boundary predictor (Gumbel-sigmoid, straight-through); segments are mean-pooled
for a backbone over segments, and each byte reads the segment closed before its own, so nothing
after a byte reaches its output and the model is an exact, cached ByteModel. `hinge` lets the
boundary rate fall below the language's prior α by up to λσ (compress more, never less);
`binomial` pins it to α. Outside training the default `eval_boundaries="sampled"` keeps the noise,
fixed per (seed, position), because a predictor trained with noise may make no boundaries without
it; `"threshold"` drops it. Written from the papers (their code has no licence and was not copied),
with the Llama-style blocks of `layers.py` instead of their post-LayerNorm Transformer-XL.
Not here: several predictors per script, entropy/unigram supervision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import BOS, VOCAB, CachedByteState, PretrainedByteLM
from .layers import BlockStack, KVCache, RMSNorm, causal_segment_mask, check_sizes, init_weights, segments_from_bos

BoundaryLoss = Literal["hinge", "binomial"]
EvalBoundaries = Literal["sampled", "threshold"]


def _default_priors() -> dict[str, tuple[float, float]]:
    # (α, σ) per language: the methods note's CPU-scale suggestion (en 0.2, de 0.18, ru 0.11, ja 0.12,
    # σ ≈ 7% of α); code is ours (ASCII like English). FLEXITOKENS' own: en 0.333/0.023, ru 0.167/0.011.
    return {"en": (0.2, 0.014), "code": (0.2, 0.014), "de": (0.18, 0.0126), "ru": (0.11, 0.0077),
            "ja": (0.12, 0.0084)}


@dataclass
class FlexiTokensConfig:
    d_byte: int = 128  # width of the byte layers before and after the backbone
    d_backbone: int = 256  # width of the backbone over segments (most parameters live here)
    n_pre: int = 2  # byte layers before pooling (they feed the boundary predictor)
    n_backbone: int = 4  # layers over segments
    n_post: int = 2  # byte layers after upsampling
    n_heads_byte: int = 4
    n_heads_backbone: int = 4
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = ratio * width (Llama's 2/3 * 4)
    predictor_ratio: float = 4.0  # boundary MLP hidden = ratio * d_byte (FLEXITOKENS: d_inner = 4 d)
    temperature: float = 0.5  # Gumbel-sigmoid (RelaxedBernoulli) temperature in training
    threshold: float = 0.5  # hard boundary where the relaxed sample exceeds this
    boundary_loss: BoundaryLoss = "hinge"  # hinge: FLEXITOKENS; binomial: Nawrot's dynamic pooling
    boundary_weight: float = 1.0  # the boundary loss is added to the byte cross-entropy with this weight
    band: float = 3.0  # λ: the hinge allows rates down to α − λσ (FLEXITOKENS default 3)
    priors: dict[str, tuple[float, float]] = field(default_factory=_default_priors)  # language -> (α, σ)
    eval_boundaries: EvalBoundaries = "sampled"  # outside training: noise fixed per position, or none (module doc)
    eval_seed: int = 0  # seeds the fixed per-position noise of eval_boundaries="sampled"
    max_bytes: int = 8192  # context window in bytes for generation and scoring
    rope_theta: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self):
        check_sizes(self, ("d_byte", "d_backbone", "n_pre", "n_backbone", "n_post", "n_heads_byte",
                           "n_heads_backbone", "max_bytes"))
        if self.d_byte % self.n_heads_byte or self.d_backbone % self.n_heads_backbone:
            raise ValueError(f"widths must divide into heads: d_byte {self.d_byte} / {self.n_heads_byte}, "
                             f"d_backbone {self.d_backbone} / {self.n_heads_backbone}")
        if self.boundary_loss not in BOUNDARY_LOSSES:
            raise ValueError(f"boundary_loss must be one of {', '.join(BOUNDARY_LOSSES)}, got {self.boundary_loss!r}")
        if self.eval_boundaries not in ("sampled", "threshold"):
            raise ValueError(f"eval_boundaries must be 'sampled' or 'threshold', got {self.eval_boundaries!r}")
        if self.temperature <= 0 or not 0 < self.threshold < 1:
            raise ValueError(f"need temperature > 0 and 0 < threshold < 1, got {self.temperature}, {self.threshold}")
        if not self.priors:
            raise ValueError("priors is empty; give at least one language: {'en': [0.2, 0.014]}")
        self.priors = {str(k): (float(v[0]), float(v[1])) for k, v in self.priors.items()}  # JSON lists -> tuples
        for lang, (alpha, sigma) in self.priors.items():
            if not 0 < alpha < 1 or sigma < 0:
                raise ValueError(f"prior for {lang!r} must have 0 < α < 1 and σ >= 0, got ({alpha}, {sigma})")

    @property
    def languages(self) -> list[str]:
        """Language names in the order a language index refers to them (the first is the default)."""
        return list(self.priors)

    def prior_index(self, names: list[str]) -> list[int]:
        """Each name's index in `languages`; 0 (the default prior) for a language without its own.

        Example: priors {en, ru}: prior_index(["ru", "es", "en"]) -> [1, 0, 0]."""
        order = self.languages
        return [order.index(n) if n in order else 0 for n in names]


# -- the maths: pure functions ------------------------------------------------------------------
def hinge_boundary_loss(n_boundaries: torch.Tensor, n_bytes: torch.Tensor, prior: torch.Tensor,
                        prior_std: torch.Tensor, band: float = 3.0) -> torch.Tensor:
    """FLEXITOKENS' loss per sequence, relu(p̂ − α) + relu(α − λσ − p̂) with p̂ = n_boundaries / n_bytes.

    All arguments (S,). Example: α 0.2, σ 0.02, λ 3 (zero for p̂ in [0.14, 0.2]):
    5 of 20 -> 0.05, 3 of 20 -> 0, 2 of 20 -> 0.04.
    """
    rate = n_boundaries / n_bytes
    return F.relu(rate - prior) + F.relu(prior - band * prior_std - rate)


def binomial_boundary_loss(n_boundaries: torch.Tensor, n_bytes: torch.Tensor, prior: torch.Tensor,
                           prior_std: torch.Tensor, band: float = 3.0) -> torch.Tensor:
    """Nawrot's loss per sequence, −log Binomial(k; n, α) / n (σ and λ are not used).

    All arguments (S,); k may carry a straight-through gradient (lgamma is smooth in k).
    Example: k 1 of n 4, α 0.25: P = 4 · 0.25 · 0.75³ = 0.421875, loss −ln(0.421875) / 4 = 0.2158.
    """
    k, n = n_boundaries, n_bytes
    log_p = (torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
             + k * torch.log(prior) + (n - k) * torch.log1p(-prior))
    return -log_p / n


BOUNDARY_LOSSES = {"hinge": hinge_boundary_loss, "binomial": binomial_boundary_loss}


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32) on int64 tensors holding values in [0, 2**32)."""
    mask = 0xFFFFFFFF
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask  # int64 products wrap, but their low 32 bits are exact
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def position_noise(positions: torch.Tensor, seed: int) -> torch.Tensor:
    """Logistic noise log u − log(1 − u), float64, with u a fixed function of (seed, position).

    What `eval_boundaries="sampled"` adds to the boundary logits: the same byte position always
    gets the same draw, whatever came before and however the text is fed (whole or byte by byte).
    """
    key = int(_hash32(torch.tensor(seed % 2**32)))
    x = _hash32((positions.long() & 0xFFFFFFFF) ^ key)
    u = (x.double() + 0.5) / 2.0**32
    return torch.log(u) - torch.log1p(-u)


def relaxed_boundaries(logits: torch.Tensor, temperature: float, threshold: float, sample: bool,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
    """Hard 0/1 boundaries with a straight-through gradient: hard + soft − soft.detach().

    soft = sigmoid((logit + logistic noise) / temperature) when `sample` (a fresh RelaxedBernoulli
    draw, training) or with the given `noise` (fixed, `position_noise`), sigmoid(logit / temperature)
    otherwise. Example: logit 0.3, no noise, temperature 0.5: soft = sigmoid(0.6) = 0.646 -> 1.
    """
    if sample:
        u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
        logits = logits + torch.log(u) - torch.log1p(-u)
    elif noise is not None:
        logits = logits + noise.to(logits.dtype)
    soft = torch.sigmoid(logits / temperature)
    hard = (soft > threshold).to(soft.dtype)
    return hard + (soft - soft.detach())  # exactly `hard` in value (hard - soft + soft may round)


def mean_pool(h: torch.Tensor, slot: torch.Tensor, frac: torch.Tensor, n_slots: int) -> torch.Tensor:
    """(B, S, d) mean of h (B, T, d) over the bytes of each slot; empty slots are 0.

    `slot` (B, T) is each byte's slot; `frac` (B, T) is zero in value and carries the
    boundaries' straight-through gradient: a byte belongs to its slot with weight 1 − frac
    and to the next with weight frac (linear interpolation between the two assignments),
    so the cross-entropy tells the predictor whether moving a boundary would have helped.
    Two scatter-adds, O(B·T·d): a (B, T, S) one-hot matrix would cost S times more.
    """
    B, T, d = h.shape
    base = (torch.arange(B, device=h.device) * (n_slots + 1))[:, None]
    here, there = (base + slot).flatten(), (base + slot + 1).flatten()  # slot + 1 <= n_slots: a spare column
    stay, move = (1 - frac).to(h.dtype).flatten(), frac.to(h.dtype).flatten()
    rows = h.flatten(0, 1)
    sums = h.new_zeros(B * (n_slots + 1), d).index_add(0, here, rows * stay[:, None]).index_add(
        0, there, rows * move[:, None])
    weight = h.new_zeros(B * (n_slots + 1)).index_add(0, here, stay).index_add(0, there, move)
    sums, weight = sums.view(B, n_slots + 1, d)[:, :n_slots], weight.view(B, n_slots + 1)[:, :n_slots]
    return sums / weight.clamp(min=1)[..., None]


@dataclass
class FlexiOutput:
    logits: torch.Tensor  # (B, T, 257) next-byte logits
    boundaries: torch.Tensor  # (B, T) 0/1 (straight-through); 1 where a segment starts, always at BOS
    segments: torch.Tensor  # (B, T) document of each position within its row (segments_from_bos)


class BoundaryPredictor(nn.Module):
    """Linear -> GELU -> Linear to one logit per byte; the bias starts at logit(α) so the rate starts at α."""

    def __init__(self, dim: int, hidden: int, prior: float):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, 1)
        self.prior = prior

    def reset_bias(self) -> None:
        nn.init.constant_(self.out.bias, math.log(self.prior / (1 - self.prior)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.up(h)))[..., 0]


class FlexiTokensLM(PretrainedByteLM):
    """Byte layers, learned boundaries, segment backbone, byte layers; a `ByteModel` (see the module docstring)."""

    model_type = "flexitokens"
    config_class = FlexiTokensConfig

    def __init__(self, config: FlexiTokensConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(VOCAB, c.d_byte)
        self.pre = BlockStack(c.n_pre, c.d_byte, c.n_heads_byte, c.mlp_ratio, c.rope_theta)
        self.predictor = BoundaryPredictor(c.d_byte, round(c.predictor_ratio * c.d_byte), c.priors[c.languages[0]][0])
        self.null_group = nn.Parameter(torch.zeros(c.d_byte))  # the slot before a document's first segment
        self.pool_norm = RMSNorm(c.d_byte)
        self.down = nn.Linear(c.d_byte, c.d_backbone, bias=False)
        self.backbone = BlockStack(c.n_backbone, c.d_backbone, c.n_heads_backbone, c.mlp_ratio, c.rope_theta)
        self.backbone_norm = RMSNorm(c.d_backbone)
        self.up = nn.Linear(c.d_backbone, c.d_byte, bias=False)
        self.post = BlockStack(c.n_post, c.d_byte, c.n_heads_byte, c.mlp_ratio, c.rope_theta)
        self.norm = RMSNorm(c.d_byte)
        self.head = nn.Linear(c.d_byte, VOCAB, bias=False)
        init_weights(self, c.init_std)
        nn.init.normal_(self.null_group, std=c.init_std)
        self.predictor.reset_bias()
        self.register_buffer("prior_table", torch.tensor([list(v) for v in c.priors.values()]), persistent=False)

    # -- stages, shared by training and generation --------------------------------------------
    def encode(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
               caches: list[KVCache] | None = None) -> torch.Tensor:
        return self.pre(self.embed(ids), positions, mask, caches)

    def boundaries(self, h: torch.Tensor, start: torch.Tensor, positions: torch.Tensor, sample: bool) -> torch.Tensor:
        """(B, T) straight-through 0/1 from states h (B, T, d_byte); forced to 1 where `start` (BOS).

        `sample`: fresh Gumbel noise (training); otherwise `config.eval_boundaries` decides: noise
        fixed by each byte's position in its document (`positions`, (B, T)), or none."""
        c = self.config
        noise = position_noise(positions, c.eval_seed) if not sample and c.eval_boundaries == "sampled" else None
        b = relaxed_boundaries(self.predictor(h), c.temperature, c.threshold, sample, noise)
        return torch.where(start, torch.ones_like(b), b)

    def run_backbone(self, pooled: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                     caches: list[KVCache] | None = None) -> torch.Tensor:
        """pooled (B, S, d_byte) segment means (null groups in place) -> (B, S, d_byte) context vectors."""
        x = self.backbone(self.down(self.pool_norm(pooled)), positions, mask, caches)
        return self.up(self.backbone_norm(x))

    def decode(self, h: torch.Tensor, context: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
               caches: list[KVCache] | None = None) -> torch.Tensor:
        """h (B, T, d_byte) byte-layer states (the residual) + context (B, T, d_byte) -> logits (B, T, 257)."""
        return self.head(self.norm(self.post(h + context, positions, mask, caches)))

    # -- training -----------------------------------------------------------------------------
    def run(self, ids: torch.Tensor) -> FlexiOutput:
        """ids (B, T) packed rows, each starting with BOS -> logits, boundaries and documents.

        Slots of a row: for each document, its null group, then one per segment. BOS counts
        twice in the running sum (its null slot and its segment), so byte t's slot is
        cumsum(boundaries + is_bos)_t − 1, and it reads the output of slot − 1.
        """
        B, T = ids.shape
        if not bool((ids[:, 0] == BOS).all()):
            raise ValueError(f"every row must start with BOS ({BOS}); pack documents with tokenshift.common.packing.pack")
        segments, positions = segments_from_bos(ids, BOS)
        start = ids == BOS
        h = self.encode(ids, positions, causal_segment_mask(segments))
        b = self.boundaries(h, start, positions, sample=self.training)  # (B, T)
        slot = ((b.detach() + start).cumsum(1) - 1).long()  # (B, T) exact: sums of small integers
        moved = (b - b.detach()).cumsum(1)  # zero in value; the straight-through gradient
        first = torch.arange(T, device=ids.device) - positions  # each position's BOS
        frac = moved - moved.gather(1, first)  # a boundary moves only the bytes of its own document
        n_slots = int(slot.max()) + 1
        pooled = mean_pool(h, slot, frac, n_slots)  # (B, S, d_byte)
        null = torch.zeros(B, n_slots, dtype=torch.bool, device=ids.device)
        rows = torch.arange(B, device=ids.device)[:, None].expand(B, T)
        null[rows[start], slot[start] - 1] = True
        pooled = torch.where(null[..., None], self.null_group.to(pooled.dtype), pooled)
        slot_doc, slot_pos = segments_from_bos(null.long(), 1)
        out = self.run_backbone(pooled, slot_pos, causal_segment_mask(slot_doc))  # (B, S, d_byte)
        context = out.gather(1, (slot - 1)[..., None].expand(B, T, out.shape[-1]))
        logits = self.decode(h, context, positions, causal_segment_mask(segments))
        return FlexiOutput(logits, b, segments)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) packed rows -> logits (B, T, 257) for the next byte."""
        return self.run(ids).logits

    def boundary_loss(self, ids: torch.Tensor, out: FlexiOutput,
                      languages: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, boundaries, bytes): the configured boundary loss over the documents of the batch.

        `languages` indexes `config.languages`: (B,) one per row, or (B, T) constant within a
        document; None: the first (default) prior for every document.
        Per document, p̂ counts the segment starts among its bytes (BOS and padding excluded);
        the loss is the byte-weighted mean of the per-document losses.
        """
        B, T = ids.shape
        is_byte = (ids != BOS).to(out.boundaries.dtype)
        doc = (torch.arange(B, device=ids.device)[:, None] * (T + 1) + out.segments).flatten()
        n_docs = B * (T + 1)
        zeros = torch.zeros(n_docs, dtype=is_byte.dtype, device=ids.device)
        k = zeros.index_add(0, doc, (out.boundaries * is_byte).flatten())  # (n_docs,) boundaries among bytes
        n = zeros.index_add(0, doc, is_byte.flatten())
        lang = torch.zeros_like(ids) if languages is None else languages.to(ids.device)
        if lang.shape == (B,):
            lang = lang[:, None].expand(B, T)
        if lang.shape != ids.shape:
            raise ValueError(f"languages must be (B,) or (B, T) like ids {tuple(ids.shape)}, got {tuple(lang.shape)}")
        prior = self.prior_table.to(is_byte.dtype)[lang.flatten()]  # (B*T, 2)
        alpha = zeros.index_add(0, doc, prior[:, 0] * is_byte.flatten())
        sigma = zeros.index_add(0, doc, prior[:, 1] * is_byte.flatten())
        keep = n > 0
        k, n = k[keep], n[keep]
        alpha, sigma = alpha[keep] / n, sigma[keep] / n
        per_doc = BOUNDARY_LOSSES[self.config.boundary_loss](k, n, alpha, sigma, self.config.band)
        return (per_doc * n).sum() / n.sum().clamp(min=1), k.detach().sum(), n.sum()

    def forward_with_loss(self, ids: torch.Tensor, languages: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, weighted boundary loss to add to the cross-entropy, stats to log) for `LitLM`."""
        out = self.run(ids)
        loss, k, n = self.boundary_loss(ids, out, languages)
        stats = {"boundary_loss": loss.detach(), "boundaries": k, "bytes": n}
        return out.logits, self.config.boundary_weight * loss, stats

    # -- ByteModel ----------------------------------------------------------------------------
    def start(self, prefix: bytes = b"") -> "FlexiTokensState":
        return FlexiTokensState(self, prefix)


class FlexiTokensState(CachedByteState):
    """Incremental FLEXITOKENS: KV caches for the byte layers and the backbone; never re-reads the prefix.

    Feeding bytes runs the byte layers and the predictor on them; each byte that starts a
    segment closes the open one, which is pooled and pushed through one backbone step; the
    post layers then read the newest closed slot. Same stages as `FlexiTokensLM.run` in
    eval mode (`eval_boundaries`, whatever the model's mode), so the log-probs match it.
    """

    def _setup(self) -> None:
        model, c = self.model, self.model.config
        self.pre, self.post, self.bb = model.pre.new_caches(), model.post.new_caches(), model.backbone.new_caches()
        dtype = model.embed.weight.dtype
        self.open_sum = torch.zeros(c.d_byte, device=model.device, dtype=dtype)  # states of the segment being read
        self.open_count = 0
        self.table = torch.zeros(0, c.d_byte, device=model.device, dtype=dtype)  # backbone output of each closed slot
        self.starts: list[int] = []  # byte offsets (after BOS) where a segment starts

    def _step(self, ids: list[int], x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        model, dev = self.model, self.model.device
        h = model.encode(x, positions, None, self.pre)
        b = model.boundaries(h, x == BOS, positions, sample=False)[0].tolist()  # only the first id can be BOS
        closed, context = [], []
        for i in range(len(ids)):
            p = self.n + i
            if p == 0:  # BOS: the null group is slot 0
                closed.append(model.null_group)
            if p == 0 or b[i] > 0.5:
                if p > 0:
                    closed.append(self.open_sum / self.open_count)
                    self.starts.append(p - 1)
                self.open_sum, self.open_count = h[0, i].clone(), 1
            else:
                self.open_sum, self.open_count = self.open_sum + h[0, i], self.open_count + 1
            context.append(self.table.shape[0] + len(closed) - 1)
        if closed:
            first = self.table.shape[0]
            slot_pos = torch.arange(first, first + len(closed), device=dev)[None]
            out = model.run_backbone(torch.stack(closed)[None], slot_pos, None, self.bb)
            self.table = torch.cat([self.table, out[0]])
        ctx = self.table[torch.tensor(context, device=dev)][None]
        return model.decode(h, ctx, positions, None, self.post)
