"""The cover and bounds maths as pure functions: their worked examples, and the property that
makes lazy sampling exact (a decision from bounds is the pick from the full distribution)."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel.exact import bounds, cover
from tokenshift.bytelevel.exact.bounds import decide, normalised_bounds, pick, slot_bounds
from tokenshift.bytelevel.exact.cover import segmentations
from tokenshift.bytelevel.trie import TokenTrie


@pytest.mark.parametrize("module", [cover, bounds], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_worked_examples_in_docstrings_hold(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_segmentations_of_empty_one_byte_and_split_character():
    trie = TokenTrie([b"a", b"ab", b"b", "é".encode()[:1], "é".encode()[1:], "é".encode(), None])
    assert segmentations(trie, b"") == [()]
    assert segmentations(trie, b"b") == [(2,)]
    assert sorted(segmentations(trie, "aé".encode())) == [(0, 3, 4), (0, 5)]
    assert segmentations(trie, b"c") == []  # no token spells it


def _near_a_cdf_step(w: np.ndarray, u: float, temperature: float) -> bool:
    """Whether `u` lies within rounding of a step of the CDF (or of an argmax tie): either answer is right."""
    if temperature == 0:
        top = np.sort(w)[-2:]
        return bool(top[1] - top[0] < 1e-9)
    q = (w / w.max()) ** (1 / temperature)
    return bool(np.abs(np.cumsum(q) / q.sum() - u).min() < 1e-9)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), u=st.floats(0, 1, exclude_max=True), temperature=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_decision_from_bounds_is_the_pick_from_the_full_distribution(data, u, temperature):
    """Weights `w` somewhere inside `lo <= w <= hi`: when `decide` answers, `pick` on `w` agrees,
    and exact bounds (lo == hi) always answer."""
    slots = data.draw(st.lists(st.integers(0, 256), min_size=1, max_size=8, unique=True))
    hi = np.zeros(257)
    hi[slots] = data.draw(st.lists(st.floats(1e-3, 1.0), min_size=len(slots), max_size=len(slots)))
    lo = hi * np.array(data.draw(st.lists(st.floats(0, 1), min_size=257, max_size=257)))
    w = lo + data.draw(st.floats(0, 1)) * (hi - lo)
    if w.sum() <= 0 or _near_a_cdf_step(w, u, temperature):
        return
    want = pick(torch.log(torch.from_numpy(w)), u, temperature)
    byte = decide(lo, hi, u, temperature)
    assert byte is None or byte == want
    assert decide(w, w, u, temperature) == want


@settings(max_examples=200, deadline=None)
@given(data=st.data(), temperature=st.sampled_from([0.5, 1.0, 2.0]))
def test_normalised_bounds_contain_every_normalised_vector_inside(data, temperature):
    n = 6
    lo = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    hi = lo + np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    t = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    w = lo + t * (hi - lo)
    if w.sum() <= 0 or hi.max() <= 0:
        return
    scaled = (w / w.max()) ** (1 / temperature)  # the same law; w ** (1/T) alone underflows for subnormal w
    p = scaled / scaled.sum()
    p_lo, p_hi = normalised_bounds(lo, hi, temperature)
    assert (p_lo <= p + 1e-12).all() and (p <= p_hi + 1e-12).all()


def test_slot_bounds_count_unchecked_mass_in_the_upper_bound_only():
    nxt = np.array([97, 97, 98, 256])
    lo, hi = slot_bounds(nxt, np.array([1.0, 2.0, 4.0, 8.0]), np.array([1, -1, 0, 1]), 0.5, 0.25)
    assert lo[97] == 1.0 and hi[97] == 3.25
    assert lo[98] == 0.0 and hi[98] == 0.25  # known non-canonical: only the pending mass
    assert lo[256] == 0.5  # the end-of-text slot is the end mass, not the candidates ending there
    allowed = np.zeros(257, dtype=bool)
    allowed[98] = True
    lo, hi = slot_bounds(nxt, np.ones(4), np.ones(4, dtype=np.int8), 0.5, 0.0, allowed)
    assert lo.sum() == hi.sum() == 1.0
