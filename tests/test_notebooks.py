"""The notebooks on a machine without the corpus: they read text only through `corpus_text`, their imports
resolve against today's library, and (slow) each one runs to the end with `TOKENSHIFT_DATA=none`."""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
from pathlib import Path

import pytest

from tokenshift.bytelevel import corpus

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_text_only_through_corpus_text(path):
    source = "\n".join(code_cells(path))
    assert "shared_data_dir" not in source and not re.search(r"\bDATA\s*/", source), \
        "read corpus files with corpus_text(lang, split), which falls back on the built-in texts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_resolve(path):
    """Every `from tokenshift... import name` of the notebook names something the library has (refactors drift)."""
    checked = 0
    for source in code_cells(path):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokenshift"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module} has no {alias.name}"
                    checked += 1
    assert checked > 0


def test_corpus_languages_and_text_without_the_corpus(monkeypatch):
    monkeypatch.setenv("TOKENSHIFT_DATA", corpus.NO_CORPUS)
    assert corpus.shared_data_dir() is None
    assert corpus.corpus_languages(("en", "de", "code", "ru")) == ["en", "code"]
    assert "builtin:en and builtin:code" in corpus.corpus_source()
    for lang in corpus.BUILTIN_TEXTS:
        train, valid = corpus.corpus_text(lang, "train"), corpus.corpus_text(lang, "valid")
        assert train and valid and train + valid == corpus.builtin_text(lang)  # disjoint, nothing lost
        assert train.endswith(b"\n")  # cut at a line break
        assert len(valid) < len(train)
    with pytest.raises(FileNotFoundError, match="only en, code have built-in texts"):
        corpus.corpus_text("de")
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        corpus.corpus_languages(("en", "xx"))
    with pytest.raises(ValueError, match="split must be"):
        corpus.corpus_text("en", "test")


def test_corpus_text_reads_the_corpus_when_present(tmp_path, monkeypatch):
    (tmp_path / "en.valid.txt").write_bytes(b"held out\n")
    (tmp_path / "en.txt").write_bytes(b"training\n")
    (tmp_path / "de.valid.txt").write_bytes("Grüße\n".encode())
    monkeypatch.setenv("TOKENSHIFT_DATA", str(tmp_path))
    assert corpus.corpus_languages(("en", "de")) == ["en", "de"]
    assert corpus.corpus_text("en") == b"held out\n" and corpus.corpus_text("en", "train") == b"training\n"
    assert corpus.corpus_text("de") == "Grüße\n".encode()
    assert str(tmp_path) in corpus.corpus_source()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        corpus.corpus_text("ru")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_the_corpus(path, tmp_path):
    """Executed (QUICK, as shipped) in a copy of the repository's layout, so figures and runs land in tmp."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name in ("pyproject.toml", "bench", "models", "hypernet", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.read(path, as_version=4)
    env = {"TOKENSHIFT_DATA": corpus.NO_CORPUS, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    printed = "".join("".join(o.get("text", "")) for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "builtin:en and builtin:code only" in printed
