"""skinoct.io._normalize.percentiles is np.percentile, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.io import normalize_intensity
from skinoct.io._normalize import _SELECT_MIN, percentiles


def _values(kind: str, n: int, rng) -> np.ndarray:
    if kind == "uniform":
        return rng.random(n).astype(np.float32)
    if kind == "ties":  # few distinct values: order statistics equal to their neighbours
        return rng.integers(0, 40, n).astype(np.float32)
    if kind == "sorted":  # a strided subsample sees a biased slice of sorted data
        return np.sort(rng.normal(size=n)).astype(np.float32)
    if kind == "rows":  # one image row repeated: the stride can alias with the width
        return np.tile(rng.random(1200), n // 1200 + 1)[:n].astype(np.float32)
    return (rng.lognormal(0, 2, n) * (rng.random(n) < 0.3)).astype(np.float32)  # zeros


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["uniform", "ties", "sorted", "rows", "sparse"]),
    n=st.integers(_SELECT_MIN, 3 * _SELECT_MIN),
    q=st.one_of(
        st.just((0.5, 99.5)),
        st.tuples(st.floats(0, 100), st.floats(0, 100)),
        st.just((0.0, 100.0)),
    ),
    seed=st.integers(0, 2**16),
)
def test_percentiles_equal_numpy_bit_for_bit(kind, n, q, seed):
    x = _values(kind, n, np.random.default_rng(seed))
    np.testing.assert_array_equal(percentiles(x, q), np.percentile(x, q))


def test_small_arrays_and_the_bracket_fallback(monkeypatch):
    rng = np.random.default_rng(0)
    small = rng.random(100).astype(np.float32)
    np.testing.assert_array_equal(percentiles(small, (1, 99)), np.percentile(small, (1, 99)))
    # a subsample that misses the ranks (all its values are the maximum) forces the
    # whole-array partition, and the answer stays numpy's
    x = rng.random(2 * _SELECT_MIN).astype(np.float32)
    real_sort = np.sort
    monkeypatch.setattr(np, "sort", lambda a, *args, **kw: np.full_like(a, a.max()))
    got = percentiles(x, (0.5, 99.5))
    monkeypatch.setattr(np, "sort", real_sort)
    np.testing.assert_array_equal(got, np.percentile(x, (0.5, 99.5)))


def test_normalize_intensity_maps_the_percentiles_to_0_and_1():
    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 100.0, (300, 400)).astype(np.float32)
    out = normalize_intensity(image)
    lo, hi = np.percentile(image, (0.5, 99.5))
    expected = (image - np.float32(lo)) / np.float32(hi - lo)
    np.testing.assert_array_equal(out, expected)
    assert np.mean(out < 0) == pytest.approx(0.005, abs=1e-4)
