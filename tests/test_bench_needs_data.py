"""Benchmarks that read ../shared/data say so in one line when it is absent (no traceback)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
NEEDS_DATA = ("ann", "ensemble", "fim", "fim_model", "exact_sampling", "hypernet", "dynamic", "distill")


@pytest.mark.parametrize("name", NEEDS_DATA)
def test_bench_without_the_corpora_exits_with_one_line(name, monkeypatch):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "shared_data_dir", lambda: None)
    monkeypatch.setattr(sys, "argv", [f"bench/{name}.py"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    message = str(exit_.value.code)
    assert "../shared/data" in message and "\n" not in message
