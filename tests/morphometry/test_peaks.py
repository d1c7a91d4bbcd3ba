"""Prominences of regional maxima from the basin graph (issue 14: papillae in ≤ 2 s).

``skinoct.morphometry._peaks`` replaces a pixel-by-pixel walk of the max-tree and
skimage's grey-level reconstruction (``h_maxima``); both are kept here as oracles, and
the fast code must give *exactly* their numbers, ties and plateaus included.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from skinoct.morphometry._peaks import h_maxima_mask, prominences, regional_maxima


def _max_tree_prominences(values: np.ndarray, floor: float, significant: float) -> np.ndarray:
    """The former implementation: the max-tree walked leaf to root (Python loop)."""
    from skimage.morphology import max_tree

    parent, traverser = max_tree(values, connectivity=1)
    vals, par = values.ravel().tolist(), parent.ravel().tolist()
    best = list(range(len(vals)))
    prom = [0.0] * len(vals)
    col: dict[int, float] = {}
    for p in reversed(traverser.tolist()):
        q = par[p]
        if q == p:
            continue
        bp, bq = best[p], best[q]
        if vals[bp] > vals[bq] or (vals[bp] == vals[bq] and bp < bq):
            winner, loser = bp, bq
            best[q] = bp
        else:
            winner, loser = bq, bp
        prom[loser] = vals[loser] - vals[q]
        if prom[loser] >= significant and prom[loser] > 0:
            col[winner] = max(col.get(winner, vals[q]), vals[q])
    top = best[int(traverser[0])]
    prom[top] = vals[top] - col.get(top, floor)
    return np.asarray(prom)


def _fast_prominences(values: np.ndarray, floor: float, significant: float) -> np.ndarray:
    maxima = regional_maxima(values, connectivity=1)
    out = np.zeros(values.size)
    out[maxima.index] = prominences(maxima, floor=floor, significant=significant)
    return out


def _image(seed: int, ndim: int, levels: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 40, size=ndim))
    image = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(0.0, 2.5))
    if levels:  # few grey levels: plateaus and exactly equal maxima
        image = np.round(image * levels)
    return image


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    ndim=st.sampled_from([1, 2]),
    levels=st.sampled_from([0, 1, 3, 10]),
    significant=st.floats(0.0, 2.0),
)
def test_prominences_equal_the_max_tree_walk(seed, ndim, levels, significant):
    image = _image(seed, ndim, levels)
    floor = float(image.min())
    want = _max_tree_prominences(image, floor, significant)
    got = _fast_prominences(image, floor, significant)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    ndim=st.sampled_from([1, 2]),
    levels=st.sampled_from([0, 1, 3, 10]),
    fraction=st.floats(0.02, 0.9),
)
def test_h_maxima_mask_equals_skimage(seed, ndim, levels, fraction):
    from skimage.morphology import h_maxima

    image = _image(seed, ndim, levels)
    if np.ptp(image) == 0:
        return
    h = fraction * float(np.ptp(image))
    np.testing.assert_array_equal(h_maxima_mask(image, h), h_maxima(image, h) > 0)


def test_prominences_of_a_known_profile():
    # maxima 3 (x=1), 5 (x=3), 4 (x=6); saddles 1 (x=2) and 0 (x=4, 5)
    profile = np.array([0.0, 3, 1, 5, 0, 0, 4, 2])
    maxima = regional_maxima(profile)
    found = prominences(maxima, floor=0.0, significant=3.0)
    prom = dict(zip(maxima.index.tolist(), found.tolist(), strict=True))
    assert prom[1] == 2.0  # 3 above the saddle at 1
    assert prom[6] == 4.0  # 4 above the saddle at 0
    # the highest absorbed the 4 (significant) at level 0: 5 − 0
    assert prom[3] == 5.0
    assert all(prom[i] == 0 for i in prom if i not in (1, 3, 6))  # shoulders, the ends


def test_equal_maxima_tie_to_the_first_pixel():
    profile = np.array([0.0, 2, 0, 2, 0])
    maxima = regional_maxima(profile)
    found = prominences(maxima, floor=0.0, significant=1.0)
    prom = dict(zip(maxima.index.tolist(), found.tolist(), strict=True))
    # the later one dies at the saddle; the first keeps its height above that saddle
    assert prom[3] == 2.0 and prom[1] == 2.0
    # h-maxima: equal maxima do not remove each other
    assert h_maxima_mask(profile, 1.5).tolist() == [False, True, False, True, False]


def test_h_maxima_mask_rejects_a_bad_h():
    with pytest.raises(ValueError, match="h must be > 0"):
        h_maxima_mask(np.arange(5.0), 0.0)
