"""`AnnVocabulary(index="scann")`: ScaNN behind the same search/save/load as the FAISS kinds."""
from __future__ import annotations

import numpy as np
import pytest

from tokenshift.transplant import ann as ann_module
from tokenshift.transplant.ann import AnnVocabulary


def _vectors(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), 5 * rng.standard_normal((50, d)).astype(np.float32)


def test_without_scann_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(ann_module, "_scann", lambda: None)
    rows, _ = _vectors(100, 8)
    with pytest.raises(ImportError, match="extra 'scann'"):
        AnnVocabulary(rows, [b"x"] * len(rows), index="scann")


def test_scann_recalls_the_exact_argmax_and_round_trips(tmp_path):
    pytest.importorskip("scann")
    rows, queries = _vectors()
    tokens = [str(i).encode() for i in range(len(rows))]
    exact = np.argmax(queries @ rows.T, 1)
    ann = AnnVocabulary(rows, tokens, index="scann", nlist=32, nprobe=16, candidates=64)
    scores, ids = ann.search(queries, k=5)
    assert float((ids[:, 0] == exact).mean()) >= 0.85  # half the leaves of random vectors: a hard case
    every = AnnVocabulary(rows, tokens, index="scann", nlist=32, nprobe=32, candidates=64)
    assert float((every.search(queries, k=1)[1][:, 0] == exact).mean()) >= 0.98  # every leaf: only AH's ranking
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", queries, rows[ids]), rtol=1e-5)  # re-scored exactly
    assert ann.memory_bytes() > rows.nbytes
    ann.save(tmp_path / "scann")
    back = AnnVocabulary.load(tmp_path / "scann")
    assert back.kind == "scann" and back.token_bytes == tokens
    again = back.search(queries, k=5)
    assert (again[1] == ids).all() and np.allclose(again[0], scores)
