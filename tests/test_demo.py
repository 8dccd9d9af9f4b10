"""`make demo` on a user's machine: a copy of the repository with no ../shared beside it.

The recipe is the Makefile's own (`make demo`), run in a temporary copy of the
working tree whose parent holds no `shared/` folder, with this checkout's
virtual environment (VENV=..., its stamp taken as up to date: the copy must
not reinstall it). The installed `tokenshift` is the one that runs. The fast
test swaps SmolLM2 and GPT-2 for a tiny Llama and a tiny BPE through
DEMO_MODEL/DEMO_TOKENIZER (method and flags unchanged); the slow one is the
real demo.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def _copy_repository(dest: Path) -> Path:
    """The working tree's tracked and unignored files, copied (no .venv, runs/ or other ignored output)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _run_demo(tmp_path: Path, *overrides: str, timeout: int) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not (VENV / "bin" / "tokenshift").exists():
        pytest.skip(f"no tokenshift console script in {VENV}; run the tests from the project's .venv")
    repo = _copy_repository(tmp_path / "repo")
    assert not (repo.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENSHIFT_DATA", "MAKEFLAGS", "MAKELEVEL")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    stamp = VENV / ".installed"
    cmd = ["make", "--no-print-directory", "-o", str(stamp), "demo", f"VENV={VENV}", *overrides]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def _check_demo_output(result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "demo evaluation text: builtin:en" in out and "not found" in out
    assert "--eval builtin:en builtin:code" in out
    rows = [line.split() for line in out.splitlines()]
    for name in ("builtin:en", "builtin:code"):  # the before/after table has a row for each text
        assert any(row[:1] == [name] and len(row) >= 4 for row in rows), out[-4000:]
    assert "../shared/data" not in out.split("demo evaluation text:")[1].split("\n", 1)[1]
    return out


@pytest.fixture
def tiny_demo_inputs(tmp_path):
    from tiny import byte_bpe, tiny_llama

    old = byte_bpe(300)
    model = tiny_llama(len(old), dtype=__import__("torch").float32)
    model_dir, tok_dir = tmp_path / "tiny-model", tmp_path / "tiny-tok"
    model.save_pretrained(model_dir)
    old.save_pretrained(model_dir)
    new_text = "def history(python):\n    return 'The history of Python' * 3\n" * 30
    byte_bpe(280, ("<|endoftext|>",), new_text).save_pretrained(tok_dir)
    return model_dir, tok_dir


def test_make_demo_without_shared_data_uses_builtin_texts(tmp_path, tiny_demo_inputs):
    model_dir, tok_dir = tiny_demo_inputs
    result = _run_demo(tmp_path, f"DEMO_MODEL={model_dir}", f"DEMO_TOKENIZER={tok_dir}",
                       f"DEMO_OUT={tmp_path / 'out'}", timeout=600)
    _check_demo_output(result)
    assert (tmp_path / "out" / "transplant_report.json").is_file()


@pytest.mark.slow
def test_make_demo_real_smollm2_without_shared_data(tmp_path):
    pytest.importorskip("gguf", reason="the real demo needs the assets extra (gguf); make installs it")
    result = _run_demo(tmp_path, timeout=1800)  # ~2.5 min on 2 quiet cores; shared machines are slower
    out = _check_demo_output(result)
    assert "smollm2 -> gpt2 (tokenadapt)" in out
