"""Dynamic tokenization: BPE merges learned on each batch, with embeddings made on the fly.

Feher, Vulić and Minixhofer ("Retrofitting (Large) Language Models with Dynamic
Tokenization", ACL 2025): tokenize the batch with the base tokenizer, then
repeatedly merge the most frequent adjacent pair of symbols *across the whole
batch*, never across a word (pre-token) boundary, until `max_merges` merges are
made or no pair is left. The batch then speaks its own vocabulary: the base
tokens plus the merged ones, whose embeddings come from a ZeTT hypernetwork (or,
without one, a transplant heuristic: FVT mean of the pieces by default), kept in
an LRU cache because the same merges recur from batch to batch.

A decoder reads the merged sequence through `inputs_embeds`; to score it, the
output side gets the new tokens' output rows appended to the LM head, so each
position is a softmax over base + batch tokens (`score_dynamic`). With zero
merges this is exactly the plain model.

Differences from the reference code, written down: a merged token whose bytes
are already a base token reuses that base id (its trained rows) instead of a
predicted one; ties between equally frequent pairs go to the pair seen first,
so that merging is deterministic.
"""
from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.pretok import pretoken_starts
from tokenshift.bytelevel.utf8 import utf8_runs
from tokenshift.common.embeddings import embedding_rows

# embeds new tokens (their bytes) -> (input rows, output rows), each (n, d)
PieceEmbedder = Callable[[list[bytes]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class DynamicBatch:
    """A batch in its own vocabulary: ids < `base_size` are base tokens, the rest index `new_pieces`."""

    ids: list[list[int]]
    base_ids: list[list[int]]  # the same texts under the base tokenizer (what the merges started from)
    new_pieces: list[bytes]
    base_size: int
    merges: list[tuple[int, int]] = field(default_factory=list)

    def lengths(self) -> tuple[int, int]:
        """(merged tokens, base tokens) over the whole batch."""
        return sum(map(len, self.ids)), sum(map(len, self.base_ids))

    def reduction(self) -> float:
        """Share of tokens saved by the merges (0.25 = 25% shorter)."""
        merged, base = self.lengths()
        return 1.0 - merged / base if base else 0.0


def word_spans(vocab: ByteVocab, data: bytes) -> list[int]:
    """Byte offsets where words (the tokenizer's pre-tokens) start, 0 first; invalid UTF-8 runs are words."""
    starts, offset = [0], 0
    for text, raw in utf8_runs(data):
        if text is None:
            starts.append(offset)
        else:
            byte_at = [0]
            for ch in text:
                byte_at.append(byte_at[-1] + len(ch.encode("utf-8")))
            starts += [offset + byte_at[s] for s in pretoken_starts(vocab, text) if s < len(text)]
        offset += len(raw)
    return sorted(set(s for s in starts if s < len(data)))


class DynamicTokenizer:
    """Base tokenizer + batch-level merges inside words (see the module docstring).

    `embedder` maps new tokens' bytes to (input rows, output rows); see
    `HeuristicEmbedder` and `hypernet_embedder`. Embeddings are cached (LRU,
    `cache_size` tokens) across batches.
    """

    def __init__(self, base_tokenizer: Any, embedder: PieceEmbedder | None = None, max_merges: int = 64,
                 boundaries: str = "words", cache_size: int = 65536):
        if boundaries not in ("words", "none"):
            raise ValueError(f"boundaries must be 'words' or 'none', got {boundaries!r}")
        if max_merges < 0:
            raise ValueError(f"max_merges must be >= 0, got {max_merges}")
        self.vocab = ByteVocab.of(base_tokenizer)
        self.vocab.require_lossless("dynamic tokenization")
        self.embedder, self.max_merges, self.boundaries = embedder, max_merges, boundaries
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.by_bytes = {p: i for i, p in enumerate(self.vocab.pieces) if p and i not in self.vocab.special}

    # -- tokenization --------------------------------------------------------------------------------
    def words(self, data: bytes) -> tuple[list[int], list[tuple[int, ...]]]:
        """(base ids of the text, its words as tuples of base ids): a token never straddles two words."""
        ids = self.vocab.encode(data)
        if self.boundaries == "none":
            return ids, [tuple(ids)] if ids else []
        starts = set(word_spans(self.vocab, data))
        words: list[list[int]] = []
        offset = -len(self.vocab.prefix_bytes)  # a dummy prefix belongs to the first word
        for token in ids:
            if not words or offset in starts:
                words.append([])
            words[-1].append(token)
            offset += len(self.vocab.pieces[token])
        return ids, [tuple(w) for w in words]

    def tokenize(self, texts: Sequence[bytes | str], max_merges: int | None = None) -> DynamicBatch:
        """The batch under base tokens plus up to `max_merges` merges learned on this batch."""
        datas = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]
        budget = self.max_merges if max_merges is None else max_merges
        base_ids, doc_words = [], []
        for data in datas:
            ids, words = self.words(data)
            base_ids.append(ids)
            doc_words.append(words)
        counts = Counter(w for words in doc_words for w in words)
        pieces = list(self.vocab.pieces)
        new_pieces: list[bytes] = []
        new_ids: dict[bytes, int] = {}
        merges: list[tuple[int, int]] = []
        table = {w: w for w in counts}  # original word -> current symbols
        for _ in range(budget):
            pairs: Counter = Counter()
            for word, symbols in table.items():
                for pair in zip(symbols, symbols[1:]):
                    pairs[pair] += counts[word]
            if not pairs:
                break
            best = max(pairs.items(), key=lambda kv: kv[1])[0]  # first seen among ties (Counter keeps order)
            joined = self._piece(best[0], pieces, new_pieces) + self._piece(best[1], pieces, new_pieces)
            if joined in self.by_bytes:
                merged = self.by_bytes[joined]
            elif joined in new_ids:
                merged = new_ids[joined]
            else:
                merged = len(pieces) + len(new_pieces)
                new_ids[joined] = merged
                new_pieces.append(joined)
            merges.append(best)
            table = {word: _merge(symbols, best, merged) for word, symbols in table.items()}
        ids = [[s for w in words for s in table[w]] for words in doc_words]
        return DynamicBatch(ids, base_ids, new_pieces, len(pieces), merges)

    @staticmethod
    def _piece(symbol: int, pieces: list, new_pieces: list[bytes]) -> bytes:
        return pieces[symbol] if symbol < len(pieces) else new_pieces[symbol - len(pieces)]

    def decode(self, batch: DynamicBatch, row: int) -> bytes:
        """The bytes of one merged sequence (equal to the input text: merging is lossless)."""
        data = b"".join(self._piece(s, self.vocab.pieces, batch.new_pieces) for s in batch.ids[row])
        return data[len(self.vocab.prefix_bytes):] if self.vocab.prefix_bytes and data.startswith(
            self.vocab.prefix_bytes) else data

    # -- embeddings ----------------------------------------------------------------------------------
    def new_rows(self, pieces: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and output rows of new tokens, from the LRU cache or the embedder."""
        missing = [p for p in dict.fromkeys(pieces) if p not in self._cache]
        if missing:
            if self.embedder is None:
                raise ValueError("this DynamicTokenizer has no embedder: pass embedder=HeuristicEmbedder(model, tok)")
            rows_in, rows_out = self.embedder(missing)
            for k, piece in enumerate(missing):
                self._cache[piece] = (rows_in[k], rows_out[k])
        for piece in pieces:
            self._cache.move_to_end(piece)
        rows = [self._cache[p] for p in pieces]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        if not rows:
            return torch.zeros(0), torch.zeros(0)
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def _merge(symbols: tuple[int, ...], pair: tuple[int, int], merged: int) -> tuple[int, ...]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


class HeuristicEmbedder:
    """New tokens' rows from a transplant heuristic over the base model's rows (default FVT mean).

    `method`: "mean" (FVT) or "tokenadapt" (needs `aux_embedder`, see transplant.auxiliary).
    """

    def __init__(self, model: Any, tokenizer: Any, method: str = "mean", aux_embedder: Any = None):
        from .heuristics import baselines, tokenadapt
        from .heuristics.common import Source

        if method not in ("mean", "tokenadapt"):
            raise ValueError(f"method must be 'mean' or 'tokenadapt', got {method!r}")
        vocab = ByteVocab.of(tokenizer)
        rows_in, rows_out = embedding_rows(model)
        self.source = Source(vocab, rows_in, rows_out, aux_embedder)
        self.estimate = baselines.mean if method == "mean" else tokenadapt.hybrid

    def __call__(self, pieces: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
        est = self.estimate(self.source, pieces)
        rows_out = est.rows_in if est.rows_out is None else est.rows_out
        return est.rows_in, rows_out


def hypernet_embedder(hypernet: Any) -> PieceEmbedder:
    """New tokens' rows predicted by a trained ZeTT hypernetwork (`tokenshift.hypernet`)."""
    if not hasattr(hypernet, "embed_pieces"):
        raise TypeError(f"{type(hypernet).__name__} has no embed_pieces(list[bytes]); pass a HyperNetwork")
    return hypernet.embed_pieces


# -- the model side --------------------------------------------------------------------------------


def decoder_and_head(model: Any) -> tuple[Any, torch.Tensor]:
    head = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise TypeError("score_dynamic needs a causal LM whose output layer is a bias-free linear map")
    return model.base_model, head.weight


@torch.no_grad()
def score_dynamic(model: Any, dyn: DynamicTokenizer, batch: DynamicBatch, window: int = 512) -> dict:
    """Bits per byte of the batch read in its merged tokens (base + batch vocabulary).

    Input rows: the model's own for base ids, the embedder's for new ones. Each
    position predicts the next merged token over base + new output rows (so the
    model pays for the batch vocabulary it is offered). Sequences are read after
    the start token in windows of `window` tokens, as `token_bits_per_byte`.
    """
    decoder, head = decoder_and_head(model)
    emb = model.get_input_embeddings().weight
    scale = float(getattr(model.get_input_embeddings(), "embed_scale", 1.0))  # Gemma scales its input rows
    new_in, new_out = dyn.new_rows(batch.new_pieces)
    table_in = torch.cat([emb, new_in.to(emb.dtype)]) if len(batch.new_pieces) else emb
    table_out = torch.cat([head, new_out.to(head.dtype)]) if len(batch.new_pieces) else head
    base = batch.base_size
    if emb.shape[0] != base and len(batch.new_pieces):  # padded embedding rows: put new ids after them
        raise ValueError(f"the model has {emb.shape[0]} embedding rows but the tokenizer {base} tokens")
    start = dyn.vocab.start_id
    bits, nbytes, tokens = 0.0, 0, 0
    for ids in batch.ids:
        nbytes += sum(len(DynamicTokenizer._piece(s, dyn.vocab.pieces, batch.new_pieces)) for s in ids)
        nbytes -= len(dyn.vocab.prefix_bytes) if ids and dyn.vocab.prefix_bytes else 0
        for lo in range(0, len(ids), window):
            chunk = [start, *ids[lo : lo + window]]
            x = table_in[torch.tensor(chunk)][None] * scale
            hidden = decoder(inputs_embeds=x).last_hidden_state[0, :-1]
            dtype = torch.promote_types(table_out.dtype, torch.float32)  # bf16 models: score in float32
            lp = torch.log_softmax(hidden.to(dtype) @ table_out.to(dtype).T, -1)
            bits -= float(lp[torch.arange(len(chunk) - 1), torch.tensor(chunk[1:])].sum()) / math.log(2)
            tokens += len(chunk) - 1
    return {"bits_per_byte": bits / max(nbytes, 1), "bits": bits, "bytes": nbytes, "tokens": tokens}


def chunk_text(data: bytes, size: int = 512) -> list[bytes]:
    """Consecutive pieces of about `size` bytes, cut after a newline (else a space) and never inside a character."""
    out, pos = [], 0
    while pos < len(data):
        end = min(len(data), pos + size)
        if end < len(data):
            cut = max(data.rfind(b"\n", pos + size // 2, end), data.rfind(b" ", pos + size // 2, end))
            end = cut + 1 if cut >= 0 else end
            while end < len(data) and 0x80 <= data[end] < 0xC0:  # do not split a UTF-8 character
                end += 1
        out.append(data[pos:end])
        pos = end
    return out


def evaluate_merges(model: Any, tokenizer: Any, texts: Sequence[bytes], merges: Sequence[int], batch_size: int = 8,
                    embedder: PieceEmbedder | None = None, progress: bool = True) -> list[dict]:
    """For each merge budget: tokens, sequence-length reduction and bits per byte over `texts` in batches.

    `texts` are cut into batches of `batch_size`; each batch learns its own
    merges. The 0-merge row is the plain model (the reference).
    """
    from tokenshift.bytelevel.progress import progress as tqdm

    embedder = embedder or HeuristicEmbedder(model, tokenizer)
    dyn = DynamicTokenizer(tokenizer, embedder)
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    rows = []
    for budget in tqdm(list(merges), desc="merge budgets", disable=not progress):
        merged = base = 0
        bits = nbytes = 0.0
        new = 0
        for batch_texts in batches:
            batch = dyn.tokenize(batch_texts, max_merges=budget)
            m, b = batch.lengths()
            merged, base, new = merged + m, base + b, new + len(batch.new_pieces)
            scored = score_dynamic(model, dyn, batch)
            bits, nbytes = bits + scored["bits"], nbytes + scored["bytes"]
        rows.append({"merges": budget, "tokens": merged, "base_tokens": base, "reduction": 1 - merged / base,
                     "bits_per_byte": bits / nbytes, "new_tokens_per_batch": new / len(batches)})
    plain = next((r["bits_per_byte"] for r in rows if r["merges"] == 0), None)
    for r in rows:
        r["bpb_cost"] = None if plain is None else r["bits_per_byte"] / plain - 1
    return rows
