"""Dynamic tokenization (batch-level merges) and the ANN output vocabulary."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import byte_bpe, sp_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant.dynamic import DynamicTokenizer, HeuristicEmbedder, score_dynamic, word_spans
from tokenshift.transplant.dynamic_eval import continuation_bits, evaluate_prompt_compression, ngram_vocabulary, split_prompt

TEXTS = ["abbaab abbaab baaab ab", "abbaab. baaab b'a abbaab", "éab éab 1234 12 baaab", "baaab abbaab éab"]
TEXT = st.text(alphabet="ab é'1\n.", max_size=30).map(lambda s: s.encode("utf-8")) | st.binary(max_size=20)


@pytest.fixture(scope="module", params=["byte_bpe", "sp_bpe"])
def setup(request):
    tok = byte_bpe() if request.param == "byte_bpe" else sp_bpe("", "bpe", 270)
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float64)
    return tok, vocab, model


def _symbol_spans(dyn, batch, row):
    """Byte (start, end) of every merged symbol of a row, in text offsets."""
    spans, offset = [], -len(dyn.vocab.prefix_bytes)
    for s in batch.ids[row]:
        n = len(dyn._piece(s, dyn.vocab.pieces, batch.new_pieces))
        spans.append((offset, offset + n))
        offset += n
    return spans


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=4), merges=st.integers(0, 12))
def test_merging_is_lossless_inside_words_and_deterministic(setup, texts, merges):
    tok, vocab, _ = setup
    dyn = DynamicTokenizer(tok, max_merges=merges)
    batch = dyn.tokenize(texts)
    again = dyn.tokenize(texts)
    assert batch.ids == again.ids and batch.new_pieces == again.new_pieces
    assert len(batch.merges) <= merges
    for row, data in enumerate(texts):
        assert dyn.decode(batch, row) == data
        assert batch.base_ids[row] == vocab.encode(data)
        starts = set(word_spans(vocab, data))
        for lo, hi in _symbol_spans(dyn, batch, row):
            assert not any(lo < s < hi for s in starts if s > 0), "a merged token crosses a word boundary"
    assert batch.lengths()[0] <= batch.lengths()[1]


def test_merges_shorten_the_batch_and_follow_pair_frequency(setup):
    tok, vocab, _ = setup
    dyn = DynamicTokenizer(tok, max_merges=20)
    batch = dyn.tokenize(TEXTS)
    assert batch.reduction() > 0.05
    assert dyn.tokenize(TEXTS, max_merges=0).ids == [vocab.encode(t.encode()) for t in TEXTS]
    # the first merge is the most frequent adjacent pair inside words
    none = DynamicTokenizer(tok, max_merges=0).tokenize(TEXTS)
    from collections import Counter

    pairs = Counter()
    for t, ids in zip(TEXTS, none.ids):
        words = DynamicTokenizer(tok).words(t.encode())[1]
        for w in words:
            pairs.update(zip(w, w[1:]))
    assert pairs[batch.merges[0]] == max(pairs.values())


def test_zero_merges_score_as_the_plain_model(setup):
    tok, vocab, model = setup
    dyn = DynamicTokenizer(tok, HeuristicEmbedder(model, tok), max_merges=0)
    batch = dyn.tokenize(TEXTS)
    got = score_dynamic(model, dyn, batch)
    want, nbytes = 0.0, 0
    start = vocab.start_id
    for t in TEXTS:
        ids = vocab.encode(t.encode())
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([[start, *ids]])).logits[0].double(), -1)
        want -= float(lp[torch.arange(len(ids)), torch.tensor(ids)].sum()) / math.log(2)
        nbytes += len(t.encode())
    assert got["bytes"] == nbytes
    assert got["bits_per_byte"] == pytest.approx(want / nbytes, rel=1e-9)


def test_merged_scoring_uses_the_embedder_and_its_cache(setup):
    tok, vocab, model = setup
    calls = []
    mean = HeuristicEmbedder(model, tok)

    def counting(pieces):
        calls.append(list(pieces))
        return mean(pieces)

    dyn = DynamicTokenizer(tok, counting, max_merges=10)
    batch = dyn.tokenize(TEXTS)
    assert batch.new_pieces, "the tiny batch should need new tokens"
    first = score_dynamic(model, dyn, batch)
    second = score_dynamic(model, dyn, batch)
    assert len(calls) == 1 and first == second  # the LRU cache answered the second time
    assert math.isfinite(first["bits_per_byte"]) and first["tokens"] == batch.lengths()[0]
    # the FVT row of a new token is the mean of its pieces' rows
    piece = batch.new_pieces[0]
    rows_in, _ = dyn.new_rows([piece])
    parts = vocab.encode_raw(piece)
    emb = model.get_input_embeddings().weight.detach().float()
    assert torch.allclose(rows_in[0], emb[parts].mean(0), atol=1e-6)


def test_ngram_vocabulary_counts_runs_inside_or_across_words(setup):
    """Entries are the most frequent runs not already spelled by a base token or `exclude`,
    against a direct count; `boundaries="none"` adds runs across words."""
    from collections import Counter

    tok, vocab, _ = setup
    data = [t.encode("utf-8") for t in TEXTS]
    dyn = DynamicTokenizer(tok, max_merges=0)
    counts = Counter(w[i : i + n] for d in data for w in dyn.words(d)[1]
                     for n in (2, 3) for i in range(len(w) - n + 1))
    spell = lambda g: b"".join(vocab.pieces[i] for i in g)  # noqa: E731
    grams = ngram_vocabulary(tok, data, 1000, max_n=3, progress=False)
    assert grams and len({spell(g) for g in grams}) == len(grams)
    assert all(spell(g) not in dyn.by_bytes for g in grams)
    assert counts[grams[0]] == max(c for g, c in counts.items() if spell(g) not in dyn.by_bytes)
    assert all(len(g) <= 3 for g in grams)
    words = set(ngram_vocabulary(tok, data, 1000, progress=False))
    across = ngram_vocabulary(tok, data, 1000, progress=False, boundaries="none", exclude=[spell(g) for g in words])
    assert across and not {spell(g) for g in across} & {spell(g) for g in words}
    assert any(b" " in spell(g)[1:] or (b"\xe2\x96\x81" in spell(g)[1:]) for g in across)  # some cross a word start


def test_bad_inputs():
    tok = byte_bpe()
    with pytest.raises(ValueError, match="max_merges"):
        DynamicTokenizer(tok, max_merges=-1)
    with pytest.raises(ValueError, match="boundaries"):
        DynamicTokenizer(tok, boundaries="sentences")
    dyn = DynamicTokenizer(tok, max_merges=5)
    with pytest.raises(ValueError, match="embedder"):
        dyn.new_rows([b"abab"])


# -- prompt compression (merges learned on the prompt, continuation scored in base tokens) -----------

DOC = ("abbaab baaab abbaab éab 1234 abbaab. baaab b'a abbaab ab ba\n" * 3
       + "ba ab aab abba baaab 12 é ab abbaab\n" * 2).encode("utf-8")


def _plain_continuation_bits(model, vocab, prompt: bytes, continuation: bytes) -> float:
    """The reference: the model's own logits over [start, prompt, continuation], continuation positions only."""
    p, c = vocab.encode(prompt), vocab.encode_raw(continuation)
    ids = [vocab.start_id, *p, *c]
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :, : len(vocab.pieces)].double(), -1)
    pos = torch.arange(len(p), len(ids) - 1)
    return -float(lp[pos, torch.tensor(ids[len(p) + 1 :])].sum()) / math.log(2)


def test_split_prompt_cuts_at_word_starts(setup):
    tok, vocab, _ = setup
    prompt, cont = split_prompt(tok, DOC, 100, 60)
    assert DOC.startswith(prompt + cont) and 50 < len(prompt) <= 100 and 30 < len(cont) <= 60
    starts = set(word_spans(vocab, DOC))
    assert len(prompt) in starts and len(prompt + cont) in starts
    assert split_prompt(tok, DOC[:100], 100, 60) is None  # too short for both parts
    with pytest.raises(ValueError, match="prompt_bytes"):
        split_prompt(tok, DOC, 0, 60)


def test_continuation_without_merges_is_the_plain_model(setup):
    tok, vocab, model = setup
    prompt, cont = split_prompt(tok, DOC, 100, 60)
    got = continuation_bits(model, vocab, vocab.encode(prompt), vocab.encode_raw(cont))
    assert got == pytest.approx(_plain_continuation_bits(model, vocab, prompt, cont), rel=1e-9)


def test_new_rows_never_enter_the_continuation_softmax(setup):
    """Leak-free: only the input rows of the prompt's merged tokens matter; their output rows, however
    large, never price a continuation token, and continuation ids must be base tokens."""
    tok, vocab, model = setup
    prompt, cont = split_prompt(tok, DOC, 100, 60)
    mean = HeuristicEmbedder(model, tok)
    batch = DynamicTokenizer(tok, max_merges=8).tokenize([prompt])
    assert batch.new_pieces and any(i >= len(vocab.pieces) for i in batch.ids[0])
    cont_ids = vocab.encode_raw(cont)
    rows_in = mean(batch.new_pieces)[0]
    bits = continuation_bits(model, vocab, batch.ids[0], cont_ids, rows_in)

    def huge_out(pieces):  # output rows that would swallow all the mass if they were in the softmax
        r_in, r_out = mean(pieces)
        return r_in, 1e4 * torch.ones_like(r_out)

    res = {name: evaluate_prompt_compression(model, tok, [DOC], [0, 8], {"fvt": emb}, 100, 60, progress=False)
           for name, emb in (("fvt", mean), ("huge", huge_out))}
    assert res["fvt"]["rows"]["fvt"] == res["huge"]["rows"]["fvt"]
    row = res["fvt"]["rows"]["fvt"][1]
    plain = res["fvt"]["plain_continuation_bpb"]
    assert row["continuation_bpb"] * res["fvt"]["continuation_bytes"] == pytest.approx(bits, rel=1e-9)
    assert plain * res["fvt"]["continuation_bytes"] == pytest.approx(
        _plain_continuation_bits(model, vocab, prompt, cont), rel=1e-9)
    assert row["bpb_cost"] == pytest.approx(row["continuation_bpb"] / plain - 1)
    # the merged prompt's input rows do matter (the measurement is not vacuous)
    assert bits != pytest.approx(continuation_bits(model, vocab, batch.ids[0], cont_ids, 0 * rows_in), rel=1e-6)
    with pytest.raises(ValueError, match="base tokens"):
        continuation_bits(model, vocab, batch.ids[0], [len(vocab.pieces)], rows_in)
    with pytest.raises(ValueError, match="new_rows_in"):
        continuation_bits(model, vocab, batch.ids[0], cont_ids)


def test_merges_depend_on_the_prompt_only(setup):
    """Changing the continuation changes neither the prompt's merges nor the rows it asks for."""
    tok, vocab, model = setup
    seen = []

    def recording(pieces):
        seen.append(tuple(pieces))
        return HeuristicEmbedder(model, tok)(pieces)

    prompt, cont = split_prompt(tok, DOC, 100, 60)
    other = prompt + cont[:1] + "é é é baaab baaab 1234 1234 1234 abbaab\n".encode("utf-8") * 3
    n = len(prompt)  # both documents split here: the prompt is the same, the continuations differ
    a = evaluate_prompt_compression(model, tok, [DOC], [0, 6, "all"], {"fvt": recording}, n, 60, progress=False)
    first = list(seen)
    seen.clear()
    b = evaluate_prompt_compression(model, tok, [other], [0, 6, "all"], {"fvt": recording}, n, 60, progress=False)
    assert a["prompt_bytes"] == b["prompt_bytes"] == n
    assert seen == first
    for key in ("merges_made", "prompt_tokens", "reduction", "new_tokens_per_prompt"):
        assert [r[key] for r in a["rows"]["fvt"]] == [r[key] for r in b["rows"]["fvt"]]
    assert a["plain_continuation_bpb"] != b["plain_continuation_bpb"]
    # merging until no pair is left reaches the ceiling: every word of the prompt one token
    assert a["rows"]["fvt"][-1]["reduction"] == pytest.approx(a["ceiling"])
    assert a["rows"]["fvt"][-1]["merges"] == "all"
    with pytest.raises(ValueError, match="merges"):
        evaluate_prompt_compression(model, tok, [DOC], [-1], {"fvt": recording}, n, 60, progress=False)
    with pytest.raises(ValueError, match="no document"):
        evaluate_prompt_compression(model, tok, [DOC[:50]], [0], {"fvt": recording}, 100, 60, progress=False)


# -- the ANN vocabulary -----------------------------------------------------------------------------

faiss = pytest.importorskip("faiss")


def _vectors(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((50, d)).astype(np.float32)


def test_flat_top1_is_the_exact_argmax_and_others_recall():
    from tokenshift.transplant.ann import AnnVocabulary

    rows, queries = _vectors()
    exact = np.argmax(queries @ rows.T, 1)
    tokens = [str(i).encode() for i in range(len(rows))]
    flat = AnnVocabulary(rows, tokens, index="flat")
    assert (flat.search(queries, k=1)[1][:, 0] == exact).all()
    top10 = np.argsort(-(queries @ rows.T), 1)[:, :10]
    assert (flat.search(queries, k=10)[1] == top10).all()
    for kind, floor in (("hnsw", 0.95), ("ivf", 0.95), ("ivfpq", 0.8)):
        ann = AnnVocabulary(rows, tokens, index=kind, nlist=32, nprobe=16, candidates=64)
        recall = float((ann.search(queries, k=1)[1][:, 0] == exact).mean())
        assert recall >= floor, (kind, recall)


def test_index_save_load_round_trip(tmp_path):
    from tokenshift.transplant.ann import AnnVocabulary

    rows, queries = _vectors(800, 16, seed=1)
    tokens = [bytes([i % 256, i // 256]) for i in range(len(rows))]
    for kind in ("flat", "hnsw", "ivf", "ivfpq"):
        ann = AnnVocabulary(rows, tokens, index=kind, nlist=16)
        ann.save(tmp_path / kind)
        back = AnnVocabulary.load(tmp_path / kind)
        assert back.token_bytes == tokens and back.kind == kind
        a, b = ann.search(queries, k=5), back.search(queries, k=5)
        assert (a[1] == b[1]).all() and np.allclose(a[0], b[0])
    with pytest.raises(FileNotFoundError):
        AnnVocabulary.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="index"):
        AnnVocabulary(rows, tokens, index="lsh")
    with pytest.raises(ValueError, match="tokens"):
        AnnVocabulary(rows, tokens[:-1])


def test_saved_index_has_a_format_version_and_a_future_one_is_refused(tmp_path):
    import json

    from tokenshift.transplant.ann import VERSION, AnnVocabulary

    rows, queries = _vectors(200, 8, seed=2)
    tokens = [str(i).encode() for i in range(len(rows))]
    AnnVocabulary(rows, tokens, index="flat").save(tmp_path)
    meta_file = tmp_path / "ann_vocabulary.json"
    meta = json.loads(meta_file.read_text())
    assert meta["version"] == VERSION == 1
    assert AnnVocabulary.load(tmp_path).token_bytes == tokens
    del meta["version"]  # saved before the field existed: read as version 1
    meta_file.write_text(json.dumps(meta))
    assert (AnnVocabulary.load(tmp_path).search(queries, k=1)[1][:, 0] == np.argmax(queries @ rows.T, 1)).all()
    meta_file.write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match="version 99.*reads version 1"):
        AnnVocabulary.load(tmp_path)


def test_ann_generation_over_the_base_vocabulary_is_greedy_generation():
    from tokenshift.transplant.ann import AnnVocabulary, generate_with_ann

    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=5, dtype=torch.float32)
    head = model.get_output_embeddings().weight.detach()
    pieces = [p or b"" for p in vocab.pieces]
    ann = AnnVocabulary(head, pieces, index="flat")
    prompt = b"ab ba"
    got = generate_with_ann(model, tok, ann, prompt, max_new_tokens=8, stop_ids=set())
    ids = [vocab.bos_id, *vocab.encode(prompt)]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, min_new_tokens=8,
                             pad_token_id=0, eos_token_id=None)
    assert got == b"".join(pieces[i] for i in out[0, len(ids):].tolist())
