"""distill_transplant() (ALM): chunk alignment against brute force, the loss, packing, training moves only what
it should, determinism, bad input."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import TRAIN_TEXT, byte_bpe, sp_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant import transplant
from tokenshift.transplant.api import parse_id_ranges
from tokenshift.transplant.alm import align_chunks, alm_loss, binary_kl, collate_pairs, pack_pairs, space_mask
from tokenshift.transplant.distill import distill_transplant

OTHER_TEXT = "the cat sat on the mat; a bat ate a rat. ab ba 12 34 \u00e9t\u00e9 " * 30
FAST = dict(batch_size=2, block_size=32, learning_rate=1e-2, progress=False)
ALPHABET = "ab é\n.12\u0436\u00e9t\u4e2d\U0001f600\t'"


@pytest.fixture(scope="module")
def vocabs():
    """A byte-level BPE teacher vocabulary; students: another byte-level BPE and a SentencePiece with byte
    fallback and a dummy prefix (characters outside its training text become <0xNN> tokens)."""
    return {"bpe": ByteVocab.from_tokenizer(byte_bpe()),
            "bpe_other": ByteVocab.from_tokenizer(byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT)),
            "sp": ByteVocab.from_tokenizer(sp_bpe("", "bpe", 270))}


def brute_force_chunks(t_pieces, s_pieces, t_prefix, s_prefix):
    """Every (teacher count, student count) pair of token prefixes that spell the same non-empty text is a
    shared boundary; token i is in the chunk numbered by how many boundaries come at or before its start."""
    t_pre = [b"".join(t_pieces[:a])[t_prefix:] for a in range(len(t_pieces) + 1)]
    s_pre = [b"".join(s_pieces[:b])[s_prefix:] for b in range(len(s_pieces) + 1)]
    pairs = sorted((a, b) for a in range(1, len(t_pieces) + 1) for b in range(1, len(s_pieces) + 1)
                   if t_pre[a] and t_pre[a] == s_pre[b])
    t_chunk = [sum(a <= i for a, _ in pairs) for i in range(len(t_pieces))]
    s_chunk = [sum(b <= j for _, b in pairs) for j in range(len(s_pieces))]
    return t_chunk, s_chunk, len(pairs)


def test_align_chunks_example():
    t, s, n = align_chunks([b"ab", b"c", b" d"], [b"a", b"bc", b" ", b"d"])
    assert t.tolist() == [0, 0, 1] and s.tolist() == [0, 0, 1, 1] and n == 2
    t, s, n = align_chunks([b"ab"], [b" ", b"ab"], 0, 1)  # a prefix-only token joins the first chunk
    assert t.tolist() == [0] and s.tolist() == [0, 0] and n == 1
    with pytest.raises(ValueError, match="different bytes from byte 1"):
        align_chunks([b"ab"], [b"ac"])


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=40), student=st.sampled_from(["bpe_other", "sp"]))
def test_align_chunks_matches_brute_force(vocabs, text, student):
    tv, sv = vocabs["bpe"], vocabs[student]
    data = text.encode("utf-8")
    t_pieces = [tv.pieces[i] for i in tv.encode(data)]
    s_pieces = [sv.pieces[i] for i in sv.encode(data)]
    tp, sp = len(tv.prefix_bytes), len(sv.prefix_bytes)
    t, s, n = align_chunks(t_pieces, s_pieces, tp, sp)
    assert (t.tolist(), s.tolist(), n) == brute_force_chunks(t_pieces, s_pieces, tp, sp)
    t_text = [b"".join(p for p, c in zip(t_pieces, t) if c == k) for k in range(n)]
    s_text = [b"".join(p for p, c in zip(s_pieces, s) if c == k) for k in range(n)]
    assert b"".join(t_text)[tp:] == data and b"".join(s_text)[sp:] == data
    assert t_text[1:] == s_text[1:] and t_text[0][tp:] == s_text[0][sp:]  # each chunk: the same bytes


def test_byte_fallback_case_is_exercised(vocabs):
    sv = vocabs["sp"]
    ids = sv.encode("\u4e2d\U0001f600".encode("utf-8"))
    assert any(len(sv.pieces[i]) == 1 and sv.pieces[i][0] >= 0x80 for i in ids)  # <0xNN> pieces


@pytest.mark.parametrize("student", ["bpe_other", "sp"])
def test_pack_pairs_rows_spell_the_same_chunks(vocabs, student):
    tv, sv = vocabs["bpe"], vocabs[student]
    text = OTHER_TEXT[:400] + "\n\n\u0436\u4e2d\U0001f600 " * 5 + "\n\n" + TRAIN_TEXT[:300]
    rows, stats = pack_pairs(tv, sv, [text], 24)
    assert stats["skipped_pieces"] == 0 and stats["pieces"] > 3
    assert all(len(r["s_ids"]) == 24 for r in rows)
    total = b""
    for r in rows:
        n = len(r["seg_end"])
        for k in range(n):
            t = b"".join(tv.pieces[i] for i, c in zip(r["t_ids"], r["t_chunk"]) if c == k)
            s = b"".join(sv.pieces[i] for i, c in zip(r["s_ids"], r["s_chunk"]) if c == k)
            assert t.lstrip(tv.prefix_bytes) == s.lstrip(sv.prefix_bytes) or t == s, (k, t, s)
            total += s
        assert set(r["s_chunk"][r["s_chunk"] >= 0]) == set(range(n)) == set(r["t_chunk"][r["t_chunk"] >= 0])
        starts = r["s_ids"][r["s_chunk"] < 0]
        assert (starts == sv.start_id).all()
    assert stats["bytes"] >= len(text.replace("\n\n", "").encode()) - 10 * len(rows)
    batch = collate_pairs(rows[:3], tv.start_id)
    n = len(batch["seg_end"])
    assert int(batch["s_chunk"].max()) == int(batch["t_chunk"].max()) == n - 1
    assert (batch["s_last"] >= 0).all() and (batch["t_last"] >= 0).all()
    assert int(batch["seg_end"].sum()) == sum(int(r["seg_end"].sum()) for r in rows[:3])


def test_space_mask(vocabs):
    v = vocabs["bpe"]
    m = space_mask(v)
    for i, p in enumerate(v.pieces):
        assert bool(m[i]) == (p is None or p[:1] in (b" ", b"\t", b"\n"))


def test_binary_kl():
    lt = torch.tensor([-0.5, -3.0, -40.0, 0.0])
    assert torch.allclose(binary_kl(lt, lt), torch.zeros(4), atol=1e-6)
    ls = torch.tensor([-1.0, -2.0, -10.0, -1.0])
    kl = binary_kl(lt, ls)
    assert (kl > 0).all() and torch.isfinite(kl).all()
    q, r = np.exp(-0.5 / 100 - 1e-6), np.exp(-1.0 / 100 - 1e-6)  # the two-outcome KL written out
    assert float(kl[0]) == pytest.approx(q * np.log(q / r) + (1 - q) * np.log((1 - q) / (1 - r)), rel=1e-4)


def test_alm_loss_merges_until_the_teacher_expects_a_space():
    t_chunk = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    s_chunk = torch.tensor([-1.5, -2.0, -2.0, -4.0])
    t_space = torch.log(torch.tensor([0.01, 0.5, 0.05, 0.02]))
    s_space = torch.log(torch.tensor([0.2, 0.3, 0.4, 0.5]))
    seg_end = torch.tensor([False, False, False, True])
    loss, stats = alm_loss(t_chunk, s_chunk, t_space, s_space, seg_end)
    # groups: chunks {0, 1} (the teacher's space prob after 1 is 0.5 > 0.1) and {2, 3} (the piece ends)
    t = torch.stack([-3.0 + t_space[1], -7.0 + t_space[3]])
    s = torch.stack([-3.5 + s_space[1], -6.0 + s_space[3]])
    assert stats["chunks"] == 2
    assert float(loss) == pytest.approx(float(binary_kl(t, s).mean()), rel=1e-6)
    plain, stats = alm_loss(t_chunk, s_chunk, t_space, s_space, seg_end, debias=False)
    assert stats["chunks"] == 4 and float(plain) == pytest.approx(float(binary_kl(t_chunk, s_chunk).mean()))


# -- training ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    tok = byte_bpe()
    teacher = tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=3, dtype=torch.float32)
    new_tok = byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT)
    student = transplant(teacher, tok, new_tok, method="mean")
    return teacher, tok, student, new_tok


TEXT = [OTHER_TEXT + "\n\n" + TRAIN_TEXT]


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_decreases_and_teacher_is_untouched(pair):
    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    before_t = _snapshot(teacher)
    summary = distill_transplant(teacher, tok, s, new_tok, TEXT, 30, **FAST)
    assert summary["steps"] == 30 and len(summary["alm_losses"]) == 30
    assert summary["loss_end"] < 0.3 * summary["loss_start"], summary["losses"]
    assert summary["data"]["chunks"] > 0 and summary["tokens_seen"] > 0
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before_t.items())
    assert not teacher.training and all(p.requires_grad for p in teacher.parameters())
    assert s.transplant_report.distill["steps"] == 30


def test_distillation_brings_student_chunk_likelihoods_to_the_teachers(pair):
    """After distillation the student's bits on held-out text move toward the teacher's."""
    from tokenshift.bytelevel.scoring import token_bits_per_byte

    teacher, tok, student, new_tok = pair
    valid = [OTHER_TEXT[7:500].encode()]
    target = token_bits_per_byte(teacher, tok, valid, progress=False)["bits_per_byte"]
    s = copy.deepcopy(student)
    before = token_bits_per_byte(s, new_tok, valid, progress=False)["bits_per_byte"]
    distill_transplant(teacher, tok, s, new_tok, TEXT, 40, **FAST)
    after = token_bits_per_byte(s, new_tok, valid, progress=False)["bits_per_byte"]
    assert abs(after - target) < 0.5 * abs(before - target), (before, after, target)


@pytest.mark.parametrize("tied", [False, True])
def test_only_embedding_and_head_parameters_change(pair, tied):
    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    if tied:
        s.config.tie_word_embeddings = True
        s.lm_head.weight = s.model.embed_tokens.weight
    before = _snapshot(s)
    distill_transplant(teacher, tok, s, new_tok, TEXT, 4, **FAST)
    heads = {"model.embed_tokens.weight", "lm_head.weight"}
    for name, value in before.items():
        assert torch.equal(value, s.state_dict()[name]) != (name in heads), name
    assert all(p.requires_grad for p in s.parameters()) and not s.training
    assert all(not p._backward_hooks for p in s.parameters())
    if tied:
        assert s.lm_head.weight is s.model.embed_tokens.weight


def test_train_new_rows_only_keeps_copied_and_padded_rows(pair):
    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    n = len(ByteVocab.from_tokenizer(new_tok).pieces)
    s.resize_token_embeddings(n + 8, mean_resizing=False)
    copied = set(parse_id_ranges(s.transplant_report.copied_ids))
    before = _snapshot(s)
    summary = distill_transplant(teacher, tok, s, new_tok, TEXT, 6, train_new_rows_only=True, **FAST)
    assert summary["trainable_rows"] == n - len(copied)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        changed = set((before[name] != s.state_dict()[name]).any(1).nonzero().flatten().tolist())
        assert changed and not changed & copied and max(changed) < n, name


def test_lora_adapters_move_the_body_projections_only(pair):
    pytest.importorskip("peft")
    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    before = _snapshot(s)
    summary = distill_transplant(teacher, tok, s, new_tok, TEXT, 4, lora_rank=4, train_embeddings=False,
                                 **FAST)
    after = s.state_dict()
    assert set(after) == set(before)  # merged: a plain model again, no adapter weights left
    assert type(s).__name__ == "LlamaForCausalLM" and summary["lora"]["parameters"] > 0
    projections = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        assert moved == any(p in name for p in projections), name
    assert all(p.requires_grad for p in s.parameters())


def test_same_seed_gives_the_same_weights(pair):
    teacher, tok, student, new_tok = pair
    a, b, c = (copy.deepcopy(student) for _ in range(3))
    distill_transplant(teacher, tok, a, new_tok, TEXT, 3, seed=1, **FAST)
    distill_transplant(teacher, tok, b, new_tok, TEXT, 3, seed=1, **FAST)
    distill_transplant(teacher, tok, c, new_tok, TEXT, 3, seed=2, **FAST)
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_lm_weight_adds_the_students_own_loss(pair):
    teacher, tok, student, new_tok = pair
    summary = distill_transplant(teacher, tok, copy.deepcopy(student), new_tok, TEXT, 2, lm_weight=0.5, **FAST)
    assert summary["losses"][0] > summary["alm_losses"][0] + 0.1  # 0.5 x a cross-entropy of a few nats
    assert "0.5 x student LM loss" in summary["loss"]


def test_saved_student_reloads(pair, tmp_path):
    from transformers import AutoModelForCausalLM

    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    distill_transplant(teacher, tok, s, new_tok, TEXT, 2, out_dir=tmp_path / "run", **FAST)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    assert torch.equal(again.lm_head.weight, s.lm_head.weight)


def test_bad_input(pair):
    teacher, tok, student, new_tok = pair
    s = copy.deepcopy(student)
    for steps in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="steps"):
            distill_transplant(teacher, tok, s, new_tok, TEXT, steps, **FAST)
    with pytest.raises(ValueError, match="same object"):
        distill_transplant(teacher, tok, teacher, tok, TEXT, 2, **FAST)
    with pytest.raises(ValueError, match="embedding rows"):  # the tokenizers swapped
        distill_transplant(teacher, new_tok, s, byte_bpe(400, ("<|endoftext|>",), OTHER_TEXT), TEXT, 2, **FAST)
    with pytest.raises(ValueError, match="temperature"):
        distill_transplant(teacher, tok, s, new_tok, TEXT, 2, temperature=0.0, **FAST)
    with pytest.raises(ValueError, match="merge_threshold"):
        distill_transplant(teacher, tok, s, new_tok, TEXT, 2, merge_threshold=1.5, **FAST)
    with pytest.raises(ValueError, match="nothing to train"):
        distill_transplant(teacher, tok, s, new_tok, TEXT, 2, train_embeddings=False, **FAST)
    with pytest.raises(ValueError, match="no content"):
        distill_transplant(teacher, tok, s, new_tok, ["\n\n"], 2, **FAST)
    with pytest.raises(ValueError, match="device"):
        distill_transplant(teacher, tok, s, new_tok, TEXT, 2, device="tpu9", **FAST)
    with pytest.raises(ValueError, match="copied_rows"):
        distill_transplant(teacher, tok, copy.deepcopy(teacher), tok, TEXT, 2, train_new_rows_only=True, **FAST)
    if __import__("importlib").util.find_spec("peft"):
        with pytest.raises(ValueError, match="lora_targets"):
            distill_transplant(teacher, tok, copy.deepcopy(student), new_tok, TEXT, 2, lora_rank=2,
                               lora_targets=("nope",), **FAST)
    assert torch.equal(s.lm_head.weight, student.lm_head.weight)  # nothing trained by a rejected call
