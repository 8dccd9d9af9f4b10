"""Built-in texts and text specs (bytelevel/corpus.py), and progress bars that keep logs readable (progress.py)."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenshift.bytelevel import corpus, progress as progress_module
from tokenshift.bytelevel.corpus import BUILTIN_TEXTS, builtin_text, default_eval_texts, resolve_text
from tokenshift.bytelevel.progress import progress


@pytest.mark.parametrize("name", BUILTIN_TEXTS)
def test_builtin_text_is_nonempty_utf8(name):
    data = builtin_text(name)
    assert len(data) > 4096
    data.decode("utf-8")


def test_builtin_texts_are_deterministic_across_processes():
    """Same bytes on every call, and in a fresh interpreter (no cache hides a nondeterministic choice).

    The child loads corpus.py by path, so it does not pay for importing torch through the package.
    """
    code = ("import hashlib, importlib.util, sys; spec = importlib.util.spec_from_file_location('c', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(' '.join(hashlib.sha256(m.builtin_text(n)).hexdigest() for n in m.BUILTIN_TEXTS))")
    out = subprocess.run([sys.executable, "-c", code, corpus.__file__], capture_output=True, text=True, check=True)
    assert all(builtin_text(n) == builtin_text(n) for n in BUILTIN_TEXTS)
    assert out.stdout.split() == [hashlib.sha256(builtin_text(n)).hexdigest() for n in BUILTIN_TEXTS]


def test_builtin_code_is_python_source_cut_at_a_character():
    data = builtin_text("code")
    assert len(data) <= corpus.CODE_BYTES
    assert b"def " in data and b"import " in data


def test_builtin_en_is_the_shipped_prose():
    assert builtin_text("en") == (corpus.DOCS_DIR / "overview.md").read_bytes()
    assert b"bits per byte" in builtin_text("en")


def test_cut_utf8_never_splits_a_character():
    text = "a\u00e9\u4e2d\U0001F600".encode()  # 1 + 2 + 3 + 4 bytes
    for limit in range(len(text) + 1):
        cut = corpus._cut_utf8(text, limit)
        cut.decode("utf-8")
        assert text.startswith(cut) and len(cut) <= limit and limit - len(cut) < 4
    assert corpus._cut_utf8(b"", 5) == b""


def test_resolve_text_builtin_names():
    for name in BUILTIN_TEXTS:
        assert resolve_text(f"builtin:{name}") == (f"builtin:{name}", builtin_text(name))
    assert resolve_text(Path("builtin:en"))[0] == "builtin:en"


def test_resolve_text_unknown_builtin_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"builtin:fr.*builtin:en, builtin:code"):
        resolve_text("builtin:fr")
    with pytest.raises(ValueError, match="choose from en, code"):
        builtin_text("fr")


def test_resolve_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("h\u00e9llo \U0001F600".encode())
    assert resolve_text(path) == (str(path), path.read_bytes())
    assert resolve_text(str(path)) == (str(path), path.read_bytes())


@pytest.mark.parametrize("content, error, message", [
    (None, FileNotFoundError, "does not exist"),
    ("folder", IsADirectoryError, "is a folder"),
    (b"", ValueError, "is empty"),
    (b"ok \xc3", ValueError, r"is not UTF-8 \(byte 3"),
])
def test_resolve_text_file_errors(tmp_path, content, error, message):
    path = tmp_path / "t.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        resolve_text(path)


def test_default_eval_texts_falls_back_to_builtins(monkeypatch):
    monkeypatch.setattr(corpus, "shared_data_dir", lambda: None)
    names, why = default_eval_texts()
    assert names == ["builtin:en", "builtin:code"]
    assert "builtin:en" in why and "../shared/data" in why and "\n" not in why
    for name in names:
        resolve_text(name)


def test_default_eval_texts_uses_the_corpus_when_present(monkeypatch, tmp_path):
    for lang in ("en", "code"):
        (tmp_path / f"{lang}.valid.txt").write_text(f"{lang} text")
    monkeypatch.setenv("TOKENSHIFT_DATA", str(tmp_path))
    names, why = default_eval_texts()
    assert names == [str(tmp_path / "en.valid.txt"), str(tmp_path / "code.valid.txt")]
    assert str(tmp_path) in why
    with pytest.raises(ValueError, match="split must be"):
        default_eval_texts("test")


def test_tokenshift_data_reexports_the_corpus_helpers():
    from tokenshift import data

    assert data.shared_data_dir is corpus.shared_data_dir
    assert data.read_text_bytes is corpus.read_text_bytes
    assert data.text_name("x/en.valid.txt") == "en" and data.text_name("builtin:code") == "builtin:code"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_without_a_terminal_is_silent_for_short_work():
    """The log of a 10,000-step bar that tqdm would redraw ~every 0.1 s holds nothing when it ends quickly."""
    log = io.StringIO()
    for _ in progress(range(10_000), file=log, desc="aux embeddings"):
        pass
    assert log.getvalue() == ""


def test_progress_without_a_terminal_writes_few_whole_lines(monkeypatch):
    """Past the interval: one newline-ended ASCII line per interval and one at the end, never a bare \\r."""
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_S", 0.2)
    log = io.StringIO()
    start = time.monotonic()
    for _ in progress(range(60), file=log, desc="aux embeddings"):
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n") and text.isascii()
    assert lines and "60/60" in lines[-1] and all(line.startswith("aux embeddings:") for line in lines)
    assert len(lines) <= elapsed / 0.2 + 2  # a redraw every 0.1 s would give ~6x as many
    assert len(text) < 120 * len(lines)


def test_progress_on_a_terminal_redraws_in_place():
    tty = _Terminal()
    for _ in progress(range(5), file=tty, desc="x"):
        pass
    assert tty.getvalue().startswith("\rx:") and "5/5" in tty.getvalue()


def test_progress_disabled_writes_nothing():
    log = _Terminal()
    bar = progress(total=3, file=log, disable=True)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""
