"""`tokenshift transplant --out/--force`: written whole or not at all, and only our own output is replaced.

A tiny Llama and two tiny byte-level BPEs make each transplant take a second or two (method
`mean`, no auxiliary embedder). Issue 20, defects 1, 7 and 8: `--out .` once deleted the working
folder; a killed run left a hidden staging folder that reruns never removed; the output folder
was created `drwx------`.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tokenshift.cli import main
from tokenshift.outputs import MARKER, StagedOutput, _clean_stale

OTHER_TEXT = "the quick brown fox jumps over the lazy dog, über alles; 42 ducks\n" * 10


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> tuple[Path, Path]:
    from tiny import byte_bpe, tiny_llama

    root = tmp_path_factory.mktemp("tp_cli")
    tok = byte_bpe()
    model_dir, tok_dir = root / "model", root / "newtok"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT).save_pretrained(tok_dir)
    return model_dir, tok_dir


def _transplant(dirs, out: Path | str, *extra: str) -> int:
    model_dir, tok_dir = dirs
    return main(["transplant", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--method", "mean",
                 "--out", str(out), *extra])


def _staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".transplant-"))


def test_out_dot_with_force_deletes_nothing(dirs, tmp_path, monkeypatch, capsys):
    """The reproduction of defect 1: in a folder holding `a`, `--out . --force` must refuse."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").write_text("precious")
    assert _transplant(dirs, ".", "--force") == 2
    assert "current folder" in capsys.readouterr().err
    assert (tmp_path / "a").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_output_has_umask_permissions_a_marker_and_no_leftovers(dirs, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert _transplant(dirs, tmp_path / "deep" / "out") == 0
    finally:
        os.umask(old)
    out = tmp_path / "deep" / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert json.loads((out / MARKER).read_text())["written_by"] == "tokenshift transplant"
    assert (out / "transplant_report.json").is_file() and (out / "config.json").is_file()
    assert _staging_left(out.parent) == []


def test_force_replaces_a_previous_output_and_only_with_force(dirs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _transplant(dirs, out) == 0
    (out / "stale-extra-file").write_text("from the first run")
    capsys.readouterr()
    assert _transplant(dirs, out) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "stale-extra-file").exists()  # refused: nothing touched
    assert _transplant(dirs, out, "--force") == 0
    assert not (out / "stale-extra-file").exists()  # replaced as a whole
    assert (out / "config.json").is_file() and _staging_left(tmp_path) == []


def test_force_replaces_an_older_versions_output_recognised_by_its_report(dirs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "transplant_report.json").write_text("{}")  # what outputs written before the marker hold
    assert _transplant(dirs, out, "--force") == 0
    assert (out / MARKER).is_file()


def test_force_never_replaces_a_foreign_folder(dirs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert _transplant(dirs, out, "--force") == 2
    assert "not a tokenshift transplant output" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "years of work"


def test_an_empty_folder_is_used(dirs, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert _transplant(dirs, out) == 0 and (out / MARKER).is_file()


def test_eval_takes_builtin_texts(dirs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _transplant(dirs, out, "--eval", "builtin:en", "builtin:code", "--eval-bytes", "400") == 0
    printed = capsys.readouterr().out
    assert "builtin:en" in printed and "builtin:code" in printed
    report = json.loads((out / "transplant_report.json").read_text())
    assert set(report["eval"]) == {"builtin:en", "builtin:code"}


def _dead_pid() -> int:
    """A pid that is not running (a child that has exited and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_staging_of_ours_is_removed_foreign_and_live_ones_kept(dirs, tmp_path, capsys):
    dead = _dead_pid()
    stale = tmp_path / f".transplant-{dead}-0123abcd"
    stale.mkdir()
    (stale / MARKER).write_text(json.dumps({"written_by": "tokenshift transplant", "pid": dead, "out": "out"}))
    (stale / "model.safetensors").write_bytes(b"half a model")
    foreign = tmp_path / f".transplant-{dead}-89abcdef"  # our name pattern, but no marker: not ours
    foreign.mkdir()
    (foreign / "data").write_text("someone else's")
    live = tmp_path / f".transplant-{os.getppid()}-fedcba98"  # a run still in progress
    live.mkdir()
    (live / MARKER).write_text(json.dumps({"written_by": "tokenshift transplant", "out": "other"}))
    old_style = tmp_path / ".transplant-ab_cd123"  # mkdtemp's name from older versions: left alone
    old_style.mkdir()
    assert _transplant(dirs, tmp_path / "out") == 0
    assert "removed" in capsys.readouterr().err
    assert not stale.exists() and foreign.exists() and live.exists() and old_style.exists()


def test_a_kill_between_the_renames_restores_the_previous_output(tmp_path):
    """Killed after moving the old output aside but before moving the new one in: the next run
    puts the old one back (and removes the unfinished new one)."""
    dead = _dead_pid()
    staging = tmp_path / f".transplant-{dead}-00000001"
    staging.mkdir()
    (staging / MARKER).write_text(json.dumps({"written_by": "tokenshift transplant", "pid": dead, "out": "out"}))
    old = tmp_path / f".transplant-{dead}-00000001.old"
    old.mkdir()
    (old / "transplant_report.json").write_text('{"old": true}')
    done = _clean_stale(tmp_path)
    assert any("restored" in line for line in done)
    assert json.loads((tmp_path / "out" / "transplant_report.json").read_text()) == {"old": True}
    assert _staging_left(tmp_path) == []


def test_a_kill_after_the_new_output_moved_in_removes_the_old_copy(tmp_path):
    dead = _dead_pid()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MARKER).write_text("{}")
    old = tmp_path / f".transplant-{dead}-00000002.old"
    old.mkdir()
    (old / "transplant_report.json").write_text("{}")
    _clean_stale(tmp_path)
    assert not old.exists() and (tmp_path / "out" / MARKER).exists()


def test_leaving_without_commit_removes_staging_and_the_parents_it_made(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError):
        with StagedOutput(out) as staging:
            assert staging.path.parent == out.parent and staging.path.is_dir()
            raise RuntimeError("the transplant failed")
    assert list(tmp_path.iterdir()) == []


def test_method_omp_with_a_donor_model(dirs, tmp_path):
    """--method omp --donor MODEL: the donor (a model that already reads the new tokenizer) is loaded
    and handed to transplant(donor=...); the output reloads."""
    from tiny import tiny_llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, tok_dir = dirs
    donor_dir = tmp_path / "donor"
    new_tok = AutoTokenizer.from_pretrained(tok_dir)
    tiny_llama(len(new_tok), seed=1).save_pretrained(donor_dir)
    new_tok.save_pretrained(donor_dir)
    out = tmp_path / "out"
    model_dir, _ = dirs
    assert main(["transplant", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--method", "omp",
                 "--donor", str(donor_dir), "--out", str(out)]) == 0
    assert json.loads((out / "transplant_report.json").read_text())["method"] == "omp"
    assert AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight.shape[0] == len(new_tok)


def test_method_choices_come_from_the_registry(capsys):
    from tokenshift.transplant import ALL_METHODS

    with pytest.raises(SystemExit):
        main(["transplant", "--help"])
    out = capsys.readouterr().out
    assert all(m in out for m in ALL_METHODS) and "--donor" in out and "default tokenadapt" in out


def test_finetune_without_text_or_corpus_uses_builtin_en_and_says_so(dirs, tmp_path, monkeypatch, capsys):
    import tokenshift.bytelevel.corpus as corpus

    monkeypatch.setattr(corpus, "shared_data_dir", lambda: None)
    out = tmp_path / "out"
    assert _transplant(dirs, out, "--finetune", "2", "--finetune-batch-size", "1", "--finetune-bytes", "3000") == 0
    assert "training on builtin:en" in capsys.readouterr().out
    assert json.loads((out / "transplant_report.json").read_text())["finetune"]["text"] == "builtin:en"


def test_distill_recovers_from_the_original_model_and_reports_it(dirs, tmp_path, capsys):
    """--distill STEPS: ALM from the original model instead of the LM loss; its summary lands in the report."""
    out = tmp_path / "out"
    text = tmp_path / "train.txt"
    text.write_text("The cat sat on the mat. The dog lay on the rug.\n\n" * 20, encoding="utf-8")
    assert _transplant(dirs, out, "--distill", "2", "--finetune-batch-size", "1", "--finetune-text", str(text)) == 0
    assert "distilling from the original model (ALM)" in capsys.readouterr().out
    summary = json.loads((out / "transplant_report.json").read_text())["distill"]
    assert summary["steps"] == 2 and summary["loss"].startswith("ALM") and summary["text"] == str(text)


def test_audit_without_text_or_corpus_uses_the_builtin_texts(dirs, monkeypatch, capsys):
    import tokenshift.bytelevel.corpus as corpus

    monkeypatch.setattr(corpus, "shared_data_dir", lambda: None)
    assert main(["audit", str(dirs[1])]) == 0
    out = capsys.readouterr().out
    assert "builtin:en" in out and "builtin:code" in out
    header = next(line for line in out.splitlines() if line.startswith("tokenizer"))
    assert header.split()[1:] == ["en", "code"]
