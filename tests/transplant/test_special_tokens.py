"""Special tokens are mapped by role, never to `<unk>` when the base has a row of the same role."""
from __future__ import annotations

import pytest
import torch
from tiny import TRAIN_TEXT, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.common.specials import SAME_TEXT, match_by_role, rows_by_role, special_roles, special_sources
from tokenshift.transplant import transplant

GEMMA_LIKE = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
SMOL_LIKE = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fim_prefix>")


def _tok(specials: tuple[str, ...], **declared: str):
    """A tiny byte-level BPE with exactly these specials, declaring bos/eos/pad/unk as asked (`bos_token=`...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **declared)


@pytest.fixture(scope="module")
def gemma_like():
    return _tok(GEMMA_LIKE, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module")
def smol_like():
    """SmolLM2's declarations: `<|endoftext|>` is declared *unk*, the chat marker `<|im_start|>` bos."""
    return _tok(SMOL_LIKE, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
                unk_token="<|endoftext|>")


def _model(tok, tied: bool, seed: int = 0):
    model = tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=seed, dtype=torch.float32)
    if tied:
        model.config.tie_word_embeddings = True
        model.lm_head.weight = model.model.embed_tokens.weight
    return model


def test_roles_come_from_names_before_declarations():
    specials = {0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "<my_marker>"}
    declared = {"unk": 0, "bos": 1, "eos": 2, "pad": 2}
    roles = special_roles(specials, declared)
    assert roles == {0: (("bos", "eos"),), 1: (("turn_start",), ("bos",)), 2: (("turn_end",), ("eos", "pad"))}
    by_role = rows_by_role(specials, declared)
    assert by_role["bos"] == 0 and by_role["eos"] == 0 and by_role["turn_start"] == 1 and by_role["unk"] == 0


def test_unk_only_for_a_token_whose_one_role_is_unk():
    old = {"bos": 2, "eos": 1, "unk": 3}
    assert match_by_role((("unk",),), old).input_id == 3
    assert match_by_role((("pad",), ("unk",)), old) is None  # the base has no pad row: left to the caller
    m = match_by_role((("bos", "eos"),), old)
    assert (m.input_id, m.output_id) == (2, 1)
    assert match_by_role((("turn_start",), ("bos",)), {**old, "turn_start": 7}).input_id == 7  # the name first


def test_special_sources_same_text_first_then_role_else_nothing():
    """SmolLM2-like base -> Mistral-like specials: <s>/</s> by role, a same-text marker wins over its role,
    an unknown marker has no source (the caller's mean)."""
    old = {0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>"}
    old_declared = {"unk": 0, "bos": 1, "eos": 2}
    new = {0: "<unk>", 1: "<s>", 2: "</s>", 5: "<|im_end|>", 9: "<my_marker>"}
    got = special_sources(old, old_declared, new, {"unk": 0, "bos": 1, "eos": 2})
    assert (got[1].input_id, got[1].input_role) == (0, "bos") and (got[2].output_id, got[2].output_role) == (0, "eos")
    assert (got[5].input_id, got[5].input_role, got[5].output_id) == (2, SAME_TEXT, 2)
    assert (got[0].input_id, got[0].input_role) == (0, "unk")  # "<unk>"'s one role: the base's declared unk
    assert 9 not in got


@pytest.mark.parametrize("tied", [True, False])
def test_endoftext_gets_the_document_rows_not_unk(gemma_like, smol_like, tied):
    """Gemma-3 -> SmolLM2's tokenizer: `<|endoftext|>` (declared unk) must read as Gemma's `<bos>` and, with an
    untied head, be predicted as its `<eos>` (both tools the issue measured gave it `<unk>`)."""
    base = _model(gemma_like, tied)
    out = transplant(base, gemma_like, smol_like, method="mean")
    old, new = ByteVocab.from_tokenizer(gemma_like), ByteVocab.from_tokenizer(smol_like)
    old_id = {t: i for i, t in old.special.items()}
    new_id = {t: i for i, t in new.special.items()}
    w_in, w_out = out.get_input_embeddings().weight, out.get_output_embeddings().weight
    b_in, b_out = base.get_input_embeddings().weight, base.get_output_embeddings().weight
    eot = new_id["<|endoftext|>"]
    assert torch.equal(w_in[eot], b_in[old_id["<bos>"]])
    assert torch.equal(w_out[eot], b_out[old_id["<bos>" if tied else "<eos>"]])
    assert torch.equal(w_in[new_id["<|im_start|>"]], b_in[old_id["<start_of_turn>"]])
    assert torch.equal(w_in[new_id["<|im_end|>"]], b_in[old_id["<end_of_turn>"]])
    specials = out.transplant_report.specials
    assert specials["<|endoftext|>"] == ("<bos> (bos)" if tied else "input <bos> (bos), output <eos> (eos)")
    assert specials["<fim_prefix>"].startswith("mean of the old special rows")
    assert not any("<unk>" in how for how in specials.values())


def test_bos_takes_the_document_boundary_not_a_chat_marker(gemma_like, smol_like):
    """SmolLM2 -> Gemma-3's tokenizer: Gemma's `<bos>` starts documents, as SmolLM2's `<|endoftext|>` does;
    SmolLM2 declares `<|im_start|>` its BOS, a chat marker."""
    base = _model(smol_like, tied=True)
    out = transplant(base, smol_like, gemma_like, method="mean")
    old, new = ByteVocab.from_tokenizer(smol_like), ByteVocab.from_tokenizer(gemma_like)
    old_id = {t: i for i, t in old.special.items()}
    new_id = {t: i for i, t in new.special.items()}
    w, b = out.get_input_embeddings().weight, base.get_input_embeddings().weight
    for new_text, old_text in [("<bos>", "<|endoftext|>"), ("<eos>", "<|endoftext|>"), ("<unk>", "<|endoftext|>"),
                               ("<start_of_turn>", "<|im_start|>"), ("<pad>", "<|im_end|>")]:
        assert torch.equal(w[new_id[new_text]], b[old_id[old_text]]), new_text
    assert out.transplant_report.specials["<bos>"] == "<|endoftext|> (bos)"


@pytest.mark.parametrize("method", ["mean", "random", "omp"])
def test_no_special_is_mapped_to_unk_when_the_base_has_its_role(gemma_like, smol_like, method):
    base = _model(gemma_like, tied=False)
    opts = {"donor": _model(smol_like, tied=False, seed=4)} if method == "omp" else {}
    out = transplant(base, gemma_like, smol_like, method=method, **opts)
    old = ByteVocab.from_tokenizer(gemma_like)
    unk_row = base.get_input_embeddings().weight[next(i for i, t in old.special.items() if t == "<unk>")]
    new = ByteVocab.from_tokenizer(smol_like)
    for i, text in new.special.items():
        assert not torch.equal(out.get_input_embeddings().weight[i], unk_row), text
    report = out.transplant_report.specials
    assert set(report) == set(new.special.values())
    if method == "omp":  # a marker the base has no role for: OMP from the donor's row of it
        assert report["<fim_prefix>"] == "omp from the donor's row"
