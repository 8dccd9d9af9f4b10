"""finetune_embeddings(): only the embeddings and head move, copied/padded rows can stay fixed, loss falls,
the result reloads, the CLI's --finetune path, bad input."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from tiny import TRAIN_TEXT, byte_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant import finetune_embeddings, transplant
from tokenshift.transplant.api import id_ranges, parse_id_ranges
from tokenshift.transplant.finetune import row_mask

OTHER_TEXT = "the cat sat on the mat; a bat ate a rat. ab ba 12 34 \u00e9t\u00e9 " * 30
FAST = dict(batch_size=2, block_size=32, learning_rate=1e-2, progress=False)


@pytest.fixture(scope="module")
def old():
    tok = byte_bpe()
    return tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=3, dtype=torch.float32), tok


def _tied(model):
    m = copy.deepcopy(model)
    m.config.tie_word_embeddings = True
    m.lm_head.weight = m.model.embed_tokens.weight
    return m


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("tied", [False, True])
def test_only_embedding_and_head_parameters_change(old, tied):
    model, tok = old
    m = _tied(model) if tied else copy.deepcopy(model)
    before = _snapshot(m)
    finetune_embeddings(m, tok, [TRAIN_TEXT], 5, **FAST)
    after = m.state_dict()
    heads = {"model.embed_tokens.weight", "lm_head.weight"}
    for name, value in before.items():
        if name in heads:
            assert not torch.equal(value, after[name]), f"{name} did not train"
        else:
            assert torch.equal(value, after[name]), f"{name} changed"
    assert all(p.requires_grad for p in m.parameters()) and not m.training  # restored
    assert all(not p._backward_hooks for p in m.parameters())  # the gradient masks are gone
    if tied:
        assert m.lm_head.weight is m.model.embed_tokens.weight


def test_train_new_rows_only_keeps_copied_and_padded_rows(old):
    model, tok = old
    new_tok = byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT)
    new = transplant(model, tok, new_tok, method="mean")
    n = len(ByteVocab.from_tokenizer(new_tok).pieces)
    new.resize_token_embeddings(n + 8, mean_resizing=False)  # padded rows past the tokenizer's ids
    copied = parse_id_ranges(new.transplant_report.copied_ids)
    assert 0 < len(copied) < n
    assert "copied_ids" not in repr(new.transplant_report)  # tens of kB for a real vocabulary: not printed
    before = _snapshot(new)
    text = OTHER_TEXT + "\n\n" + TRAIN_TEXT
    summary = finetune_embeddings(new, new_tok, [text], 8, train_new_rows_only=True, **FAST)
    assert summary["trainable_rows"] == n - len(copied)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        a, b = before[name], new.state_dict()[name]
        changed = set((a != b).any(1).nonzero().flatten().tolist())
        assert changed and not changed & set(copied), name
        assert max(changed) < n, f"{name}: a padded row moved"
    assert new.transplant_report.finetune["steps"] == 8


def test_train_new_rows_only_needs_the_copied_rows(old):
    model, tok = old
    with pytest.raises(ValueError, match="copied_rows"):
        finetune_embeddings(copy.deepcopy(model), tok, [TRAIN_TEXT], 2, train_new_rows_only=True, **FAST)


def test_loss_decreases_on_repetitive_text(old):
    model, tok = old
    summary = finetune_embeddings(copy.deepcopy(model), tok, [TRAIN_TEXT], 30, **FAST)
    assert summary["steps"] == 30 and len(summary["losses"]) == 30
    assert summary["loss_end"] < 0.5 * summary["loss_start"], summary
    assert summary["tokens_seen"] > 0


def test_same_seed_gives_the_same_weights(old):
    model, tok = old
    a, b, c = (copy.deepcopy(model) for _ in range(3))
    finetune_embeddings(a, tok, [TRAIN_TEXT], 4, seed=1, **FAST)
    finetune_embeddings(b, tok, [TRAIN_TEXT], 4, seed=1, **FAST)
    finetune_embeddings(c, tok, [TRAIN_TEXT], 4, seed=2, **FAST)
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_saved_model_reloads(old, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = old
    m = copy.deepcopy(model)
    text = tmp_path / "t.txt"
    text.write_text(TRAIN_TEXT)
    finetune_embeddings(m, tok, text, 3, out_dir=tmp_path / "run", **FAST)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and "train/loss" in json.loads(lines[-1])
    for folder in (tmp_path / "run" / "model", m.save_pretrained(tmp_path / "plain") or tmp_path / "plain"):
        again = AutoModelForCausalLM.from_pretrained(folder)
        assert torch.equal(again.model.embed_tokens.weight, m.model.embed_tokens.weight)
        assert torch.equal(again.lm_head.weight, m.lm_head.weight)
    assert AutoTokenizer.from_pretrained(tmp_path / "run" / "model").vocab_size == tok.vocab_size


def test_bad_input(old, tmp_path):
    model, tok = old
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            finetune_embeddings(model, tok, [TRAIN_TEXT], steps, **FAST)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        finetune_embeddings(model, tok, tmp_path / "missing.txt", 2, **FAST)
    with pytest.raises(TypeError, match="texts_or_path"):
        finetune_embeddings(model, tok, [], 2, **FAST)
    with pytest.raises(ValueError, match="no content"):
        finetune_embeddings(model, tok, ["\n\n"], 2, **FAST)
    with pytest.raises(ValueError, match="device"):
        finetune_embeddings(model, tok, [TRAIN_TEXT], 2, device="tpu9", **FAST)
    assert not list(tmp_path.iterdir())


def test_id_ranges_roundtrip_and_row_mask():
    assert id_ranges([7, 0, 1, 2, 5, 8]) == "0-2,5,7-8"
    assert parse_id_ranges("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert id_ranges([]) == "" and parse_id_ranges("") == []
    assert row_mask(5, 4, [1]).flatten().tolist() == [1, 0, 1, 1, 0]


@pytest.fixture
def tiny_dirs(old, tmp_path):
    model, tok = old
    model_dir, tok_dir = tmp_path / "model", tmp_path / "newtok"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT).save_pretrained(tok_dir)
    text = tmp_path / "train.txt"
    text.write_text(OTHER_TEXT + "\n\n" + TRAIN_TEXT)
    valid = tmp_path / "valid.txt"
    valid.write_text(OTHER_TEXT[:300])
    return model_dir, tok_dir, text, valid


def test_cli_transplant_finetune_end_to_end(tiny_dirs, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenshift.bytelevel.scoring import token_bits_per_byte
    from tokenshift.cli import main

    model_dir, tok_dir, text, valid = tiny_dirs
    out = tmp_path / "out"
    code = main(["transplant", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--method", "mean",
                 "--out", str(out), "--eval", str(valid), "--finetune", "5", "--finetune-text", str(text),
                 "--finetune-lr", "0.01", "--finetune-batch-size", "2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "bpb finetuned" in printed
    report = json.loads((out / "transplant_report.json").read_text())
    assert report["finetune"]["steps"] == 5 and report["finetune"]["learning_rate"] == 0.01
    scores = report["eval"][str(valid)]
    assert {"before", "after", "finetuned"} <= set(scores)
    assert scores["finetuned"]["bits_per_byte"] != scores["after"]["bits_per_byte"]
    again = AutoModelForCausalLM.from_pretrained(out)
    bpb = token_bits_per_byte(again, AutoTokenizer.from_pretrained(out), [valid.read_bytes()], progress=False)
    assert bpb["bits_per_byte"] == pytest.approx(scores["finetuned"]["bits_per_byte"], rel=1e-5)


@pytest.mark.parametrize("extra", [["--finetune", "0"], ["--finetune", "-2"],
                                   ["--finetune", "3", "--finetune-text", "MISSING"],
                                   ["--finetune-text", "TEXT"]])
def test_cli_finetune_bad_input_writes_nothing(tiny_dirs, tmp_path, capsys, extra):
    from tokenshift.cli import main

    model_dir, tok_dir, text, _ = tiny_dirs
    extra = [str(tmp_path / "missing.txt") if a == "MISSING" else str(text) if a == "TEXT" else a for a in extra]
    out = tmp_path / "out"
    try:
        code = main(["transplant", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--method", "mean",
                     "--out", str(out), *extra])
    except SystemExit as stop:  # argparse's own exit for a bad value: the same status
        code = stop.code
    assert code == 2 and not out.exists()
    assert "error" in capsys.readouterr().err
