"""The `tokenshift` command: --help, `audit` (table and --json), and one-line errors for bad input.

Runs `tokenshift.cli.main(argv)` in-process (fast); one subprocess call checks the installed script.
Expected numbers are computed here from the tokenizers' own encoders, never copied from a run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenshift.cli import COMMANDS, main

EN = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April.\n" * 3
DE = "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. Grüße aus Köln!\n" * 3


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("texts")
    paths = {"en": folder / "en.valid.txt", "de": folder / "de.valid.txt"}
    paths["en"].write_text(EN, encoding="utf-8")
    paths["de"].write_text(DE, encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny byte-level BPE saved as a Hugging Face tokenizer folder (a local path for the CLI)."""
    from tiny import byte_bpe

    folder = tmp_path_factory.mktemp("tiny_tok")
    byte_bpe().save_pretrained(folder)
    return folder


def test_help_script():
    script = Path(sys.executable).parent / "tokenshift"
    if not script.exists():
        pytest.skip(f"no console script at {script} (package not installed in this interpreter's env)")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: tokenshift" in out.stdout
    for name in COMMANDS:
        assert name in out.stdout


def test_help_in_process(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "audit" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--text" in out


def test_audit_two_tokenizers_two_files(capsys, texts, tiny_folder, tmp_path, get_tokenizer):
    from transformers import AutoTokenizer

    out_json = tmp_path / "results" / "audit.json"
    tiny = str(tiny_folder)
    code, out, err = run(
        capsys, ["audit", "gpt2", tiny, "--text", str(texts["en"]), str(texts["de"]), "--json", str(out_json)]
    )
    assert code == 0, err
    assert "Traceback" not in out + err
    # the table: one row per tokenizer, one column per text
    header = next(line for line in out.splitlines() if line.startswith("tokenizer"))
    assert header.split()[1:] == ["en", "de"]
    rows = [line for line in out.splitlines() if line.startswith(("gpt2", tiny))]
    assert len(rows) >= 6  # bytes/token, ratio to English, vocabulary: a row each
    assert f"wrote {out_json}" in out

    record = json.loads(out_json.read_text())
    assert set(record) == {"name", "date", "machine", "command", "config", "metrics", "baseline"}
    assert record["name"] == "audit"
    assert record["config"]["tokenizers"] == ["gpt2", tiny]
    assert record["config"]["texts"] == {"en": str(texts["en"]), "de": str(texts["de"])}
    assert set(record["metrics"]) == {"gpt2", tiny}

    own = {
        "gpt2": lambda s: get_tokenizer("gpt2")(s, add_special_tokens=False)["input_ids"],
        tiny: lambda s: AutoTokenizer.from_pretrained(tiny_folder)(s, add_special_tokens=False)["input_ids"],
    }
    sizes = {"gpt2": len(get_tokenizer("gpt2")), tiny: len(AutoTokenizer.from_pretrained(tiny_folder))}
    for name, stats in record["metrics"].items():
        assert stats["name"] == name
        assert stats["family"] == "byte_bpe"
        assert stats["size"] == sizes[name]
        assert stats["lossless"] is True and stats["lossy_reason"] == ""
        assert stats["dummy_prefix"] is False
        assert stats["special"] >= 1
        for key in ("duplicate_groups", "duplicate_ids", "unreachable"):
            assert isinstance(stats[key], int) and stats[key] >= 0
        assert isinstance(stats["unreachable_examples"], list)
        by_text = {t["name"]: t for t in stats["texts"]}
        assert list(by_text) == ["en", "de"]
        for lang, text in (("en", EN), ("de", DE)):
            t = by_text[lang]
            n_bytes, n_tokens = len(text.encode("utf-8")), len(own[name](text))
            assert (t["bytes"], t["tokens"]) == (n_bytes, n_tokens)
            assert t["bytes_per_token"] == pytest.approx(n_bytes / n_tokens)
            assert t["tokens_per_kb"] == pytest.approx(1000 * n_tokens / n_bytes)
        assert by_text["en"]["ratio_to_en"] == pytest.approx(1.0)
        assert by_text["de"]["ratio_to_en"] == pytest.approx(by_text["de"]["tokens_per_kb"] / by_text["en"]["tokens_per_kb"])
        if name == "gpt2":  # an English BPE: German costs more tokens than English, per byte
            assert by_text["de"]["ratio_to_en"] > 1
        # the table shows the same numbers
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert row.split()[-2:] == [f"{by_text['en']['bytes_per_token']:.2f}", f"{by_text['de']['bytes_per_token']:.2f}"]
    assert record["baseline"]["tokenizer"] == "gpt2"
    assert record["baseline"]["bytes_per_token"] == {
        t["name"]: t["bytes_per_token"] for t in record["metrics"]["gpt2"]["texts"]
    }


def test_audit_sentencepiece_file_and_lossy_tokenizer(capsys, texts, tmp_path, minilm_tokenizer_file, get_tokenizer):
    """A SentencePiece .model path (dummy prefix) and a lossy WordPiece tokenizer.json: audited, lossiness shown."""
    sp = get_tokenizer("tiny_sp_bpe")
    model = tmp_path / "tiny.model"
    model.write_bytes(sp.serialized_model_proto())
    out_json = tmp_path / "audit.json"
    code, out, err = run(
        capsys, ["audit", str(model), str(minilm_tokenizer_file), "--text", str(texts["en"]), "--json", str(out_json)]
    )
    assert code == 0, err
    metrics = json.loads(out_json.read_text())["metrics"]
    spm_stats, wp_stats = metrics[str(model)], metrics[str(minilm_tokenizer_file)]
    assert spm_stats["family"] == "sentencepiece" and spm_stats["dummy_prefix"] is True
    assert spm_stats["texts"][0]["tokens"] == len(sp.encode(EN))  # SentencePiece's own count, dummy ▁ included
    assert spm_stats["lossless"] is True
    assert spm_stats["duplicate_ids"] > 0  # <0xNN> byte fallback beside single-character pieces
    assert wp_stats["family"] == "wordpiece" and wp_stats["lossless"] is False and wp_stats["lossy_reason"]
    assert f"{minilm_tokenizer_file}: lossy:" in out
    assert "NO" in out  # the lossless column


def bad_inputs(tmp: Path, good_text: Path) -> list[tuple[list[str], list[str]]]:
    """(argv, words the error must contain)."""
    empty = tmp / "empty.txt"
    empty.write_bytes(b"")
    latin1 = tmp / "latin1.txt"
    latin1.write_bytes("Grüße aus Köln\n".encode("latin-1"))
    junk_json = tmp / "junk.json"
    junk_json.write_text('{"not": "a tokenizer"')
    junk_model = tmp / "junk.model"
    junk_model.write_bytes(b"\x00\x01 this is no model")
    empty_dir = tmp / "nothing_here"
    empty_dir.mkdir()
    t = ["--text", str(good_text)]
    return [
        (["audit", str(tmp / "no_such_tokenizer"), *t], ["no_such_tokenizer", "neither", "path"]),
        (["audit", "no-such-builtin", *t], ["no-such-builtin", "built-in"]),
        (["audit", str(good_text), *t], [good_text.name, "not a tokenizer"]),
        (["audit", str(junk_json), *t], ["junk.json", "not a tokenizer"]),
        (["audit", str(junk_model), *t], ["junk.model", "not a tokenizer"]),
        (["audit", str(empty_dir), *t], ["nothing_here", "no tokenizer"]),
        (["audit", "gpt2", "--text", str(empty)], ["empty.txt", "empty"]),
        (["audit", "gpt2", "--text", str(latin1)], ["latin1.txt", "not UTF-8"]),
        (["audit", "gpt2", "--text", str(tmp / "missing.txt")], ["missing.txt", "does not exist"]),
        (["audit", "gpt2", "--text", str(empty_dir)], ["nothing_here", "folder"]),
    ]


BAD_IDS = ["missing-path", "unknown-name", "text-as-tokenizer", "junk-json", "junk-model", "empty-folder",
           "empty-text", "not-utf8", "missing-text", "folder-as-text"]


@pytest.mark.parametrize("case", range(len(BAD_IDS)), ids=BAD_IDS)
def test_bad_input_one_line_error(capsys, tmp_path, texts, case):
    argv, words = bad_inputs(tmp_path, texts["en"])[case]
    code, out, err = run(capsys, argv)
    assert code != 0
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tokenshift audit: error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_usage_error_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["audit"])  # no tokenizer
    assert exit_.value.code != 0
    assert "tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [
    ("generate", ["default 128", "default 1", "default 0"]),  # --max-bytes, --top-p, --seed
    ("transplant", ["default tokenadapt", "default 32768"]),
    ("train", ["FLEXITOKENS", "binomial"]),
    ("segment", ["--max-bytes"]),
])
def test_help_shows_the_defaults(capsys, command, words):
    with pytest.raises(SystemExit):
        main([command, "--help"] if command != "train" else ["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in out, (command, word)


def test_gguf_loading_bar_is_hidden_unless_verbose(monkeypatch):
    """transformers draws a de-quantizing bar per GGUF load; the CLI hides it unless --verbose."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from tokenshift import assets

    original = gguf_utils.tqdm
    monkeypatch.setattr(assets, "VERBOSE", False)
    with assets._quiet_gguf_bar():
        assert gguf_utils.tqdm is not original and list(gguf_utils.tqdm([1, 2], desc="x")) == [1, 2]
    assert gguf_utils.tqdm is original
    monkeypatch.setattr(assets, "VERBOSE", True)
    with assets._quiet_gguf_bar():
        assert gguf_utils.tqdm is original


def test_verbose_flag_reaches_the_loaders(capsys):
    from tokenshift import assets
    from tokenshift.cli import quiet_libraries

    quiet_libraries(True)
    assert assets.VERBOSE is True
    quiet_libraries(False)
    assert assets.VERBOSE is False


def test_transformers_loading_bars_are_hidden_unless_verbose():
    """"Loading weights" / "Writing model shards" bars spam logs; transformers is imported after the CLI starts."""
    import subprocess

    code = (
        "import sys; from tokenshift.cli import quiet_libraries; quiet_libraries(sys.argv[1] == 'verbose'); "
        "from transformers.utils import logging; print(logging.is_progress_bar_enabled())"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    quiet = subprocess.run([sys.executable, "-c", code, "quiet"], env=env, capture_output=True, text=True, check=True)
    loud = subprocess.run([sys.executable, "-c", code, "verbose"], env=env, capture_output=True, text=True, check=True)
    assert quiet.stdout.split()[-1] == "False"
    assert loud.stdout.split()[-1] == "True"
