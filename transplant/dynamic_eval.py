"""What dynamic tokenization buys, measured: n-gram output vocabularies and prompt compression.

`evaluate_prompt_compression` asks the paper's question for prompts: merge a prompt's tokens per
batch (rows from the embedders given), then score a fixed continuation in the plain tokenization, so
the bits are comparable across merge budgets. `ngram_vocabulary` builds the candidate output
vocabulary of a decoder that writes n-gram tokens (the ANN vocabulary's input).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import torch

from tokenshift.bytelevel import ByteVocab

from .dynamic import DynamicTokenizer, PieceEmbedder, decoder_and_head, word_spans


def ngram_vocabulary(tokenizer: Any, texts: Sequence[bytes], size: int, max_n: int = 4,
                     progress: bool = True, boundaries: str = "words",
                     exclude: Sequence[bytes] = ()) -> list[tuple[int, ...]]:
    """The `size` most frequent runs of 2..`max_n` base tokens inside words of `texts` (as base-id tuples).

    The candidate output vocabulary of a decoder that writes in n-gram tokens
    (the paper extends its base vocabulary to 1M this way); runs whose bytes
    are already a base token, or are in `exclude`, are left out.
    `boundaries="none"` lets runs cross words (multi-word tokens): a small
    corpus holds too few distinct in-word runs for a 1M vocabulary.
    """
    from tokenshift.bytelevel.progress import progress as tqdm

    dyn = DynamicTokenizer(tokenizer, max_merges=0, boundaries=boundaries)
    counts: Counter = Counter()
    for data in tqdm(texts, desc="n-grams", disable=not progress):
        for word in dyn.words(data)[1]:
            for n in range(2, max_n + 1):
                for i in range(len(word) - n + 1):
                    counts[word[i : i + n]] += 1
    pieces = dyn.vocab.pieces
    known = dyn.by_bytes
    out, seen = [], set(known) | set(exclude)
    for gram, _ in counts.most_common():
        spelled = b"".join(pieces[i] for i in gram)
        if spelled not in seen:  # one entry per byte string
            seen.add(spelled)
            out.append(gram)
            if len(out) == size:
                break
    return out


# -- prompt compression: merges learned on a prompt, the continuation scored in base tokens ----------
#
# The measurement the method is for on decoders (the paper's prefill setting). Learning merges on the very
# text that is scored leaks: the batch vocabulary then lists the batch's own words, and bits per byte can
# fall below the plain model's. Here the merges see the prompt only, the prompt is read in its merged tokens
# (new input rows from the embedder), and the model is judged on what comes next: the continuation, in the
# base tokenizer's tokens, each position a softmax over the base output rows only. The reference is the same
# continuation after the plainly tokenized prompt.


def split_prompt(tokenizer: Any, doc: bytes, prompt_bytes: int = 1536,
                 continuation_bytes: int = 512) -> tuple[bytes, bytes] | None:
    """(prompt, continuation): about the first `prompt_bytes` of `doc` and the next `continuation_bytes`.

    Both are cut where a word (pre-token) starts, so neither ends inside a
    word or a character; None when the document is shorter than the two.
    """
    if prompt_bytes < 1 or continuation_bytes < 1:
        raise ValueError(f"prompt_bytes and continuation_bytes must be >= 1, got {prompt_bytes}, {continuation_bytes}")
    if len(doc) < prompt_bytes + continuation_bytes:
        return None
    vocab = ByteVocab.of(tokenizer)
    starts = word_spans(vocab, doc)

    def cut(target: int, low: int) -> int:
        at = max((s for s in starts if low < s <= target), default=None)
        if at is None:  # one long word: cut at the character boundary before `target`
            at = target
            while at < len(doc) and 0x80 <= doc[at] < 0xC0:
                at -= 1
        return at

    split = cut(prompt_bytes, prompt_bytes // 2)
    if split <= 0:
        return None
    end = len(doc) if len(doc) <= split + continuation_bytes else cut(split + continuation_bytes,
                                                                      split + continuation_bytes // 2)
    return doc[:split], doc[split:end]


@torch.no_grad()
def continuation_bits(model: Any, vocab: ByteVocab, prompt_ids: Sequence[int], continuation_ids: Sequence[int],
                      new_rows_in: torch.Tensor | None = None) -> float:
    """Bits of `continuation_ids` (base tokens) read after [start, *prompt_ids].

    Prompt ids >= `len(vocab)` are merged tokens whose input rows are
    `new_rows_in[id - len(vocab)]`. Every scored position is a softmax over the
    tokenizer's base output rows only: tokens learned on the prompt never
    price the continuation (and padded embedding rows are left out).
    """
    decoder, head = decoder_and_head(model)
    layer = model.get_input_embeddings()
    emb, base = layer.weight, len(vocab.pieces)
    if any(i < 0 or i >= base for i in continuation_ids):
        raise ValueError(f"continuation ids must be base tokens (0..{base - 1})")
    if any(i >= base for i in prompt_ids) and (new_rows_in is None or max(prompt_ids) - base >= len(new_rows_in)):
        raise ValueError("the prompt holds merged token ids but new_rows_in has no row for some of them")
    ids = [vocab.start_id, *prompt_ids, *continuation_ids]
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and len(ids) > limit:
        raise ValueError(f"prompt + continuation need {len(ids)} tokens but the model's context window is {limit}; "
                         "pass a shorter prompt_bytes or continuation_bytes")
    table = emb if new_rows_in is None or not len(new_rows_in) else torch.cat([emb, new_rows_in.to(emb.dtype)])
    rows = torch.tensor([i if i < base else emb.shape[0] + i - base for i in ids])
    x = table[rows][None] * float(getattr(layer, "embed_scale", 1.0))  # Gemma scales its input rows
    first = 1 + len(prompt_ids)  # position of the first continuation token
    hidden = decoder(inputs_embeds=x).last_hidden_state[0, first - 1 : -1]
    dtype = torch.promote_types(head.dtype, torch.float32)  # bf16 models: score in float32
    lp = torch.log_softmax(hidden.to(dtype) @ head[:base].to(dtype).T, -1)
    return -float(lp[torch.arange(len(continuation_ids)), torch.tensor(list(continuation_ids))].sum()) / math.log(2)


def evaluate_prompt_compression(model: Any, tokenizer: Any, docs: Sequence[bytes], merges: Sequence[int | str],
                                embedders: dict[str, PieceEmbedder], prompt_bytes: int = 1536,
                                continuation_bytes: int = 512, progress: bool = True) -> dict:
    """Prompt compression over `docs`: per merge budget and row kind, the prompt's length reduction and the
    continuation's bits-per-byte cost against the plainly tokenized prompt (see `split_prompt`,
    `continuation_bits`). Merges are learned on each prompt alone; documents too short are skipped.
    A budget "all" merges until no pair is left (every word of the prompt one token: the ceiling).
    """
    from tokenshift.bytelevel.progress import progress as tqdm

    if not embedders:
        raise ValueError("embedders must name at least one row kind, e.g. {'fvt': HeuristicEmbedder(model, tok)}")
    vocab = ByteVocab.of(tokenizer)
    merger = DynamicTokenizer(vocab, max_merges=0)
    rowers = {name: DynamicTokenizer(vocab, embedder) for name, embedder in embedders.items()}
    pairs = [p for p in (split_prompt(vocab, d, prompt_bytes, continuation_bytes) for d in docs) if p]
    if not pairs:
        raise ValueError(f"no document holds prompt_bytes + continuation_bytes = {prompt_bytes + continuation_bytes} "
                         "bytes; pass longer documents or smaller sizes")
    bad = [b for b in merges if b != "all" and not (isinstance(b, int) and b >= 0)]
    if bad:
        raise ValueError(f"merges must be integers >= 0 or 'all', got {bad[0]!r}")
    budgets = [b for b in merges if b != 0]
    plain_bits = cont_bytes = base_tokens = words = 0.0
    acc = {(name, b): {"bits": 0.0, "tokens": 0, "new": 0, "made": 0} for name in embedders for b in budgets}
    for prompt, continuation in tqdm(pairs, desc="prompts", disable=not progress):
        cont_ids = vocab.encode_raw(continuation)
        base_ids, prompt_words = merger.words(prompt)
        plain_bits += continuation_bits(model, vocab, base_ids, cont_ids)
        cont_bytes += len(continuation)
        base_tokens += len(base_ids)
        words += len(prompt_words)
        done: dict = {}  # a budget past the prompt's last pair repeats the previous tokenization: score it once
        for budget in budgets:
            batch = merger.tokenize([prompt], max_merges=len(base_ids) if budget == "all" else budget)
            for name, dyn in rowers.items():
                key = (name, tuple(batch.ids[0]))
                if key not in done:
                    rows_in = dyn.new_rows(batch.new_pieces)[0] if batch.new_pieces else None
                    done[key] = continuation_bits(model, vocab, batch.ids[0], cont_ids, rows_in)
                a = acc[name, budget]
                a["bits"] += done[key]
                a["tokens"] += len(batch.ids[0])
                a["new"] += len(batch.new_pieces)
                a["made"] += len(batch.merges)
    plain_bpb = plain_bits / cont_bytes
    rows: dict[str, list[dict]] = {}
    for name in embedders:
        rows[name] = [{"merges": 0, "merges_made": 0.0, "prompt_tokens": int(base_tokens), "reduction": 0.0,
                       "new_tokens_per_prompt": 0.0, "continuation_bpb": plain_bpb, "bpb_cost": 0.0}] if 0 in merges else []
        for budget in budgets:
            a = acc[name, budget]
            bpb = a["bits"] / cont_bytes
            rows[name].append({"merges": budget, "merges_made": a["made"] / len(pairs), "prompt_tokens": a["tokens"],
                               "reduction": 1 - a["tokens"] / base_tokens, "new_tokens_per_prompt": a["new"] / len(pairs),
                               "continuation_bpb": bpb, "bpb_cost": bpb / plain_bpb - 1})
    return {"documents": len(pairs), "prompt_bytes": sum(len(p) for p, _ in pairs),
            "continuation_bytes": int(cont_bytes), "base_prompt_tokens": int(base_tokens),
            "ceiling": 1 - words / base_tokens, "plain_continuation_bpb": plain_bpb, "rows": rows}
