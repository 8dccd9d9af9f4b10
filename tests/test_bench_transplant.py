"""bench/transplant.py --pairs helpers: which rows are new, the fixed sample, the start-token mapping, the fill."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tests.tiny import byte_bpe, tiny_llama
from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant import transplant

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_transplant", ROOT / "bench" / "transplant.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

OLD_TEXT = "ab ba aab abba a b ab ba ab ab. " * 20
NEW_TEXT = "cab cabbage bag a bag of cabs ab " * 20


def vocabs():
    old, new = byte_bpe(280, text=OLD_TEXT), byte_bpe(290, text=NEW_TEXT)
    return old, new, ByteVocab.from_tokenizer(old), ByteVocab.from_tokenizer(new)


def test_new_ids_are_exactly_the_pieces_the_old_vocab_lacks():
    _, _, ov, nv = vocabs()
    ids = B.new_ids(ov, nv)
    have = {p for p in ov.pieces if p}
    assert ids and all(nv.pieces[i] not in have for i in ids)
    assert all(nv.pieces[i] in have for i in range(len(nv.pieces)) if nv.pieces[i] and i not in ids)
    assert all(nv.pieces[i] is not None for i in ids)  # specials are never "new rows"


def test_sample_holds_every_new_token_the_texts_use_and_is_fixed():
    _, _, ov, nv = vocabs()
    texts = {"x": b"cabbage bag", "y": b"of cabs"}
    s1, s2 = B.sample_new_rows(ov, nv, texts, extra=3), B.sample_new_rows(ov, nv, texts, extra=3)
    assert s1 == s2 and s1 == sorted(set(s1))
    todo = set(B.new_ids(ov, nv))
    used = {i for t in texts.values() for i in nv.encode(t, strict=False)} & todo
    assert used <= set(s1) and len(s1) == len(used) + min(3, len(todo - used)) and set(s1) <= todo


def test_start_mapping_names_the_old_row_copied_and_a_computed_one():
    old, new, ov, nv = vocabs()
    model = tiny_llama(len(ov.pieces))
    rows = model.get_input_embeddings().weight.detach().float().clone()
    out = transplant(model, old, new, method="mean")
    assert B.start_mapping(out, rows, ov, nv) == f"<|endoftext|> -> old <|endoftext|> (id {ov.start_id})"
    with torch.no_grad():
        out.get_input_embeddings().weight[nv.start_id] += 1.0
    assert B.start_mapping(out, rows, ov, nv) == "<|endoftext|> -> computed (no old row equals it)"


def test_fill_outside_sample_touches_only_unsampled_new_rows_of_both_matrices():
    old, new, ov, nv = vocabs()
    model = tiny_llama(len(ov.pieces))  # untied head
    out = transplant(model, old, new, method="random")
    todo = B.new_ids(ov, nv)
    sample = set(todo[::2])
    fill = torch.full((len(nv.pieces), model.config.hidden_size), 7.0)
    before_in = out.get_input_embeddings().weight.detach().clone()
    before_out = out.get_output_embeddings().weight.detach().clone()
    B.fill_outside_sample(out, fill, sample, todo)
    after_in, after_out = out.get_input_embeddings().weight.detach(), out.get_output_embeddings().weight.detach()
    for i in range(len(nv.pieces)):
        moved = i in todo and i not in sample
        for before, after in ((before_in, after_in), (before_out, after_out)):
            assert torch.equal(after[i], fill[i].to(after.dtype)) if moved else torch.equal(after[i], before[i])


def test_rows_and_pairs_cover_the_issue():
    assert set(B.ROWS) == {"mean", "random", "tokenadapt_ref", "tokenadapt", "focus", "default", "mergekit_omp", "omp"}
    assert B.PAIRS["a"][2] is None and B.PAIRS["b"] == ("gemma3", "smollm2", "smollm2")
    assert B.PAIRS["c"] == ("smollm2", "gemma3", "gemma3")
    assert B.peer_skip_reason("mergekit_omp", None).startswith("mergekit's OMP needs a donor")
