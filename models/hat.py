"""HAT: a hierarchical autoregressive transformer over bytes and words (Neitemeier et al., ICLR 2025).

bytes ─► byte encoder (causal, whole stream) ─► one cross-attention per word (a learned
query reads that word's bytes) ─► word backbone (causal over words) ─► byte decoder:
each byte adds the backbone output of the words *before* its own word (cross-attention
to that single vector), then self-attends over bytes ─► next byte or end of text.

Words come from the causal HAT splitter (`splitter.py`): a word starts at its first
character's first byte and is known ("revealed") at that character's last byte. The
decoder at byte t uses the backbone output of the last word that was complete at t,
so nothing after t leaks in (`tests/models/test_hat.py` checks it). Generation steps
the encoder and decoder every byte and the backbone only when a byte reveals a new
word. Follows the Aleph-Alpha vLLM port's structure; no training code was public.
Not here: HAT's released weights and its exact splitter (UAX #29 look-ahead rules).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BOS, VOCAB, CachedByteState, PretrainedByteLM
from .layers import (BlockStack, CrossAttention, KVCache, RMSNorm, causal_segment_mask, check_sizes, init_weights,
                     segments_from_bos)
from .splitter import WordStream


@dataclass
class HATConfig:
    d_byte: int = 128  # width of the byte encoder and decoder (the decoder reads the encoder's states)
    d_word: int = 256  # width of the word backbone (most parameters live here)
    n_enc: int = 2  # byte encoder layers
    n_backbone: int = 4  # word backbone layers
    n_dec: int = 2  # byte decoder layers
    n_heads_byte: int = 4
    n_heads_word: int = 4
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = ratio * width (Llama's 2/3 * 4)
    max_word_bytes: int = 32  # byte cap per word (the pooling reads at most this many bytes)
    max_bytes: int = 8192  # context window in bytes for generation and scoring
    rope_theta: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self):
        check_sizes(self, ("d_byte", "d_word", "n_enc", "n_backbone", "n_dec", "n_heads_byte", "n_heads_word",
                           "max_bytes"))
        if self.d_byte % self.n_heads_byte or self.d_word % self.n_heads_word:
            raise ValueError(f"widths must divide into heads: d_byte {self.d_byte} / {self.n_heads_byte}, "
                             f"d_word {self.d_word} / {self.n_heads_word}")
        if self.max_word_bytes < 4:
            raise ValueError(f"max_word_bytes must be >= 4 (a UTF-8 character), got {self.max_word_bytes}")


@dataclass
class WordLayout:
    """Where the words of a batch are. W = words in the batch, flattened row by row."""

    row: torch.Tensor  # (W,) batch row of each word
    col: torch.Tensor  # (W,) its index among its row's words
    start: torch.Tensor  # (W,) first byte
    length: torch.Tensor  # (W,) bytes
    position: torch.Tensor  # (W,) index within its document (backbone RoPE)
    segment: torch.Tensor  # (W,) document within the row
    context: torch.Tensor  # (B, T) flat index of the word each byte's decoder reads, -1: the learned first word


def segment_words(data: list[int], max_word_bytes: int) -> tuple[list[int], list[int]]:
    """Starts and reveal positions of the words of one document's bytes, as a reader of a prefix knows them."""
    stream = WordStream(max_word_bytes)
    starts, reveals = [], []
    for i, byte in enumerate(data):
        for s in stream.push(byte):
            starts.append(s)
            reveals.append(i)
    return starts, reveals


def word_layout(ids: torch.Tensor, max_word_bytes: int) -> WordLayout:
    """The words of packed rows (B, T) that start with BOS: the BOS is a word of its own.

    Byte t's decoder reads the last word complete at t: if m words of its
    document are revealed by t, that is word m - 2 (the newest one, m - 1, is
    still being read); with m < 2, the learned first-word embedding.
    """
    B, T = ids.shape
    cols: list[list[int]] = [[] for _ in range(7)]
    context = torch.full((B, T), -1, dtype=torch.long)
    flat = 0
    for r, row in enumerate(ids.tolist()):
        if row[0] != BOS:
            raise ValueError(f"row {r} does not start with BOS ({BOS}); every packed row starts a document")
        col, seg, p = 0, 0, 0
        while p < T:
            q = row.index(BOS, p + 1) if BOS in row[p + 1:] else T
            starts, reveals = segment_words(row[p + 1 : q], max_word_bytes)
            starts = [p] + [s + p + 1 for s in starts]
            reveals = [p] + [s + p + 1 for s in reveals]
            ends = starts[1:] + [q]
            for k, (s, e) in enumerate(zip(starts, ends)):
                for c, v in enumerate((r, col, s, e - s, k, seg)):
                    cols[c].append(v)
                col += 1
            m = torch.searchsorted(torch.tensor(reveals), torch.arange(p, q), right=True)  # words revealed by i
            context[r, p:q] = torch.where(m >= 2, flat + m - 2, -1)
            flat += len(starts)
            seg += 1
            p = q
    t = [torch.tensor(c, dtype=torch.long) for c in cols[:6]]
    return WordLayout(*t, context=context)


def backbone_slots(layout: WordLayout, rows: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(backbone row, column) of each word, the number of backbone rows and their width.

    The width is the most words a batch row has; rows are placed whole, first fit
    by decreasing word count, so two short rows share a backbone row instead of
    each padding up to the longest. A word's attention is unchanged: its document
    (a segment) is still contiguous and in order, and RoPE positions are explicit.
    """
    counts = torch.bincount(layout.row, minlength=rows).tolist()
    width = max(counts)
    loads: list[int] = []
    slot, start = [0] * rows, [0] * rows
    for r in sorted(range(rows), key=lambda r: -counts[r]):
        b = next((i for i, load in enumerate(loads) if load + counts[r] <= width), len(loads))
        if b == len(loads):
            loads.append(0)
        slot[r], start[r] = b, loads[b]
        loads[b] += counts[r]
    slot_t, start_t = torch.tensor(slot), torch.tensor(start)
    return slot_t[layout.row], start_t[layout.row] + layout.col, len(loads), width


class WordContext(nn.Module):
    """Cross-attention from every byte to one vector, the preceding words' backbone output.

    With a single key the attention weight is 1, so the queries and keys drop
    out and it is out(value(norm(ctx))): computed once per word, not per byte.
    """

    def __init__(self, dim: int, word_dim: int):
        super().__init__()
        self.norm = RMSNorm(word_dim)
        self.value = nn.Linear(word_dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.out(self.value(self.norm(words)))


class HATLM(PretrainedByteLM):
    """Byte encoder, word pooling, word backbone, byte decoder; a `ByteModel` (see the module docstring)."""

    model_type = "hat"
    config_class = HATConfig

    def __init__(self, config: HATConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(VOCAB, c.d_byte)
        self.encoder = BlockStack(c.n_enc, c.d_byte, c.n_heads_byte, c.mlp_ratio, c.rope_theta)
        self.pool_norm = RMSNorm(c.d_byte)
        self.latent_query = nn.Parameter(torch.zeros(c.d_word))
        self.pool = CrossAttention(c.d_word, c.d_byte, c.n_heads_word)
        self.backbone = BlockStack(c.n_backbone, c.d_word, c.n_heads_word, c.mlp_ratio, c.rope_theta)
        self.backbone_norm = RMSNorm(c.d_word)
        self.first_word = nn.Parameter(torch.zeros(c.d_word))  # the context before any word is complete
        self.context = nn.ModuleList(WordContext(c.d_byte, c.d_word) for _ in range(c.n_dec))
        self.decoder = BlockStack(c.n_dec, c.d_byte, c.n_heads_byte, c.mlp_ratio, c.rope_theta)
        self.norm = RMSNorm(c.d_byte)
        self.head = nn.Linear(c.d_byte, VOCAB, bias=False)
        init_weights(self, c.init_std)
        nn.init.normal_(self.latent_query, std=c.init_std)
        nn.init.normal_(self.first_word, std=c.init_std)

    # -- stages, shared by training and generation --------------------------------------------
    def encode(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
               caches: list[KVCache] | None = None) -> torch.Tensor:
        return self.encoder(self.embed(ids), positions, mask, caches)

    def pool_words(self, states: torch.Tensor, word: torch.Tensor, n: int) -> torch.Tensor:
        """states (N, d_byte) of bytes, word (N,) the word (0..n-1) each belongs to -> (n, d_word).

        The learned query attends over each word's bytes: every byte's keys and values
        are projected once, not per padded word slot (`CrossAttention.pool`).
        """
        return self.latent_query + self.pool.pool(self.latent_query, self.pool_norm(states), word, n)

    def run_backbone(self, words: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                     caches: list[KVCache] | None = None) -> torch.Tensor:
        return self.backbone_norm(self.backbone(words, positions, mask, caches))

    def decode(self, h: torch.Tensor, table: torch.Tensor, context: torch.Tensor, positions: torch.Tensor,
               mask: torch.Tensor | None, caches: list[KVCache] | None = None) -> torch.Tensor:
        """h (B, T, d_byte) encoder states; table (N, d_word) context vectors; context (B, T) rows of it."""
        adds = (ctx(table)[context] for ctx in self.context)  # each layer's word context, made as it runs
        return self.head(self.norm(self.decoder(h, positions, mask, caches, adds)))

    # -- training -----------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor, layout: WordLayout | None = None) -> torch.Tensor:
        """ids (B, T) packed rows, each starting with BOS -> logits (B, T, 257) for the next byte."""
        B, T = ids.shape
        layout = layout or word_layout(ids.cpu(), self.config.max_word_bytes)
        dev = ids.device
        segments, positions = segments_from_bos(ids, BOS)
        mask = causal_segment_mask(segments)  # the encoder's and the decoder's
        h = self.encode(ids, positions, mask)
        # pool every word from its bytes' encoder states (the words tile each row, in order)
        W = layout.row.shape[0]
        first = torch.zeros(B * T, dtype=torch.long)
        first[layout.row * T + layout.start] = 1
        word = (first.cumsum(0) - 1).to(dev)  # (B * T,) flat index of the word each byte is in
        words = self.pool_words(h.reshape(B * T, -1), word, W)  # (W, d_word)
        # the backbone over each row's words; rows that fit together share a backbone row
        slot, col, n_bins, width = backbone_slots(layout, B)
        grid = words.new_zeros(n_bins, width, words.shape[-1])
        at = (slot.to(dev), col.to(dev))
        grid[at] = words
        w_pos = torch.zeros(n_bins, width, dtype=torch.long)
        w_seg = -1 - torch.arange(n_bins * width).view(n_bins, width)  # padding: a segment each
        w_pos[slot, col] = layout.position
        w_seg[slot, col] = layout.row * width + layout.segment  # documents of different rows stay apart
        out = self.run_backbone(grid, w_pos.to(dev), causal_segment_mask(w_seg.to(dev)))
        table = torch.cat([self.first_word[None], out[at]])
        return self.decode(h, table, (layout.context + 1).to(dev), positions, mask)

    # -- ByteModel ----------------------------------------------------------------------------
    def start(self, prefix: bytes = b"") -> "HATState":
        return HATState(self, prefix)


class HATState(CachedByteState):
    """Incremental HAT: KV caches for the encoder, backbone and decoder; never re-reads the prefix.

    Feeding bytes runs the encoder on them, the splitter on them, one backbone
    step per newly completed word, and the decoder: the same stages as
    `HATLM.forward`, so the log-probs match a full forward pass.
    """

    def _setup(self) -> None:
        model, c = self.model, self.model.config
        self.enc, self.dec = model.encoder.new_caches(), model.decoder.new_caches()
        self.bb = model.backbone.new_caches()
        self.stream = WordStream(c.max_word_bytes)
        self.states = torch.zeros(0, c.d_byte, device=model.device)  # encoder states from byte `self.offset` on
        self.offset = 0
        self.starts = [0]  # revealed words (the BOS is word 0)
        self.table = model.first_word[None].detach()  # first word, then backbone outputs of pooled words

    def _step(self, ids: list[int], x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        model, dev = self.model, self.model.device
        h = model.encode(x, positions, None, self.enc)
        self.states = torch.cat([self.states, h[0]])
        context = []
        for i, byte in enumerate(ids):
            p = self.n + i
            if p > 0:  # the splitter counts from the first byte after BOS
                self.starts += [s + 1 for s in self.stream.push(byte)]
            context.append(len(self.starts) - 2)  # -1: the first word
        done = len(self.starts) - 1  # words before the newest are complete
        pooled = self.table.shape[0] - 1
        if done > pooled:
            ends = self.starts[pooled + 1 : done + 1]
            starts = self.starts[pooled:done]
            lengths = torch.tensor([e - s for s, e in zip(starts, ends)], device=dev)
            word = torch.repeat_interleave(torch.arange(len(starts), device=dev), lengths)
            # self.states begins at starts[0] (== self.offset): the words tile them in order
            words = model.pool_words(self.states[: ends[-1] - self.offset], word, len(starts))
            w_pos = torch.arange(pooled, done, device=dev)[None]
            out = model.run_backbone(words[None], w_pos, None, self.bb)
            self.table = torch.cat([self.table, out[0]])
            keep = self.starts[done] - self.offset
            self.states, self.offset = self.states[keep:], self.starts[done]
        ctx = torch.tensor([context], device=dev) + 1
        return model.decode(h, self.table, ctx, positions, None, self.dec)
