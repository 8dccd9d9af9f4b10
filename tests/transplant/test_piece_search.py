"""`PieceSearch` against brute-force top-k over every row."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.transplant.piece_search import PieceSearch


def _vocabulary(seed: int, n_base: int = 120, n_grams: int = 600, width: int = 12):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_base, width)).astype(np.float32)
    base[:5] = base[0]  # equal rows: ties the search must not trip over
    pieces = [tuple(rng.integers(0, n_base, size=rng.integers(1, 5))) for _ in range(n_grams)]
    grams = np.stack([base[list(p)].mean(0) for p in pieces]).astype(np.float32)
    rows = np.concatenate([base, grams])
    names = [f"t{i}".encode() for i in range(len(rows))]
    return rows, names, pieces, n_base


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 3, 10]), shift=st.floats(-5, 5))
def test_top_k_scores_are_the_brute_force_ones(seed, k, shift):
    rows, names, pieces, n_base = _vocabulary(seed)
    search = PieceSearch(rows, names, pieces, n_base)
    assert search.exact
    rng = np.random.default_rng(seed + 1)
    q = (rng.normal(size=(7, rows.shape[1])) * 10 + shift).astype(np.float32)  # queries far from the rows' scale
    scores, ids = search.search(q, k)
    want = -np.sort(-(q @ rows.T), axis=1)[:, :k]
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.einsum("md,mkd->mk", q, rows[ids]), scores, rtol=1e-5, atol=1e-5)


def test_rows_that_are_not_piece_means_are_flagged_and_still_searched():
    rows, names, pieces, n_base = _vocabulary(0)
    rows = rows.copy()
    rows[n_base + 3] += 1.0
    assert not PieceSearch(rows, names, pieces, n_base).exact
    search = PieceSearch(rows, names, pieces, n_base, seeds=n_base)  # every base token seeds: every row is seen
    q = np.random.default_rng(2).normal(size=(4, rows.shape[1])).astype(np.float32)
    scores, _ = search.search(q, 1)
    np.testing.assert_allclose(scores[:, 0], (q @ rows.T).max(1), rtol=1e-5)


def test_bad_input_is_refused():
    rows, names, pieces, n_base = _vocabulary(0)
    with pytest.raises(ValueError, match="tokens but rows"):
        PieceSearch(rows, names[:-1], pieces, n_base)
    with pytest.raises(ValueError, match="n_base"):
        PieceSearch(rows, names, pieces[:-1], n_base)
    with pytest.raises(ValueError, match="base id"):
        PieceSearch(rows, names, [(n_base + 1,)] + pieces[1:], n_base)
    with pytest.raises(ValueError, match="seeds"):
        PieceSearch(rows, names, pieces, n_base, seeds=0)
