"""Surfaces of a volume measured without a label volume (issue 12 point 2, issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.morphometry import (
    extract_boundaries,
    labels_from_surfaces,
    measure_surfaces,
    measure_volume,
    surfaces_on_grid,
)


def _surfaces(seed: int, ny: int = 24, nx: int = 30, holes: float = 0.05):
    rng = np.random.default_rng(seed)
    surface = 10 + rng.normal(0, 3, (ny, nx))
    sc = surface + rng.normal(5, 3, (ny, nx))
    dej = surface + rng.normal(20, 8, (ny, nx))
    for a in (surface, sc, dej):
        a[rng.random((ny, nx)) < holes] = np.nan
    dej[:4, :6] = np.nan  # a gap, and islands around it
    return surface, sc, dej


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dz=st.sampled_from([0.5, 1.0, 2.0]),
    n_z=st.integers(12, 70),
    holes=st.floats(0.0, 0.3),
)
def test_surfaces_on_grid_equals_the_label_volume_round_trip(seed, dz, n_z, holes):
    surface, sc, dej = _surfaces(seed, holes=holes)
    labels = labels_from_surfaces(surface, sc, dej, dz, n_z)
    got = surfaces_on_grid(surface, sc, dej, dz_um=dz, n_z=n_z)
    if not (labels > 0).any():
        assert all(np.isnan(v).all() for v in got.values())
        return
    want = extract_boundaries(labels, (dz, 1.0, 1.0), smoothing_um=0).raw
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-9, err_msg=name)


def test_measure_volume_is_boundaries_plus_measure_surfaces():
    surface, sc, dej = _surfaces(7, ny=40, nx=60, holes=0.0)
    dej = 30 + 4 * np.sin(np.arange(60) / 6)[None].repeat(40, 0)
    labels = labels_from_surfaces(surface, sc, dej, 1.0, 60)
    vol = measure_volume(labels, (1.0, 1.0, 1.0))
    raw = vol.boundaries.raw
    surf = measure_surfaces(raw["surface"], raw["sc_junction"], raw["dej"], spacing_um=(1, 1, 1))
    assert surf.to_dict() == vol.to_dict()
    np.testing.assert_array_equal(surf.dej_surface_um, vol.dej_surface_um)


def test_measure_surfaces_on_threads_gives_the_same_numbers():
    surface, sc, dej = _surfaces(3, ny=40, nx=60, holes=0.05)
    one = measure_surfaces(surface, sc, dej, spacing_um=(1, 1, 1))
    three = measure_surfaces(surface, sc, dej, spacing_um=(1, 1, 1), workers=3)
    assert three.to_dict() == one.to_dict()
    for name in ("surface", "sc_junction", "dej"):
        np.testing.assert_array_equal(three.boundaries[name], one.boundaries[name])
    with pytest.raises(ValueError, match="workers"):
        measure_surfaces(surface, sc, dej, spacing_um=(1, 1, 1), workers=0)


def test_measure_surfaces_analytic_thickness_and_errors():
    flat = np.full((20, 30), 10.0)
    m = measure_surfaces(flat, flat + 5, flat + 40, spacing_um=(1.0, 1.0, 1.0))
    assert m.epidermis_thickness_um["mean"] == 40.0
    assert m.stratum_corneum_thickness_um["mean"] == 5.0
    assert m.dermal_papillae["count"] == 0
    wide = np.full((40, 90), 10.0)
    entropy = np.zeros((40, 90))
    entropy[:, :30] = 0.9  # uncertain over 40 × 30 µm (more than a 20 µm square)
    m = measure_surfaces(wide, wide + 5, wide + 40, spacing_um=(1, 1, 1), dej_entropy_map=entropy,
                         min_segment_um=20.0)  # fmt: skip
    assert m.dej_uncertain_area_fraction == pytest.approx(1 / 3, abs=0.02)
    # ... and less than a 40 µm square (1600 µm² > 1200 µm²): not flagged
    m = measure_surfaces(wide, wide + 5, wide + 40, spacing_um=(1, 1, 1), dej_entropy_map=entropy,
                         min_segment_um=40.0)  # fmt: skip
    assert m.dej_uncertain_area_fraction == 0.0
    with pytest.raises(ValueError, match="one shape"):
        measure_surfaces(flat, flat, flat[:5], spacing_um=(1, 1, 1))
    with pytest.raises(ValueError, match="dej_entropy_map has shape"):
        measure_surfaces(flat, flat, flat, spacing_um=(1, 1, 1), dej_entropy_map=entropy)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    spacing=st.sampled_from([(1.0, 1.0), (2.0, 1.0), (0.5, 3.0)]),
    window=st.floats(1.0, 15.0),
    threshold=st.sampled_from([1.0, 2.5, 6.0]),
    quantised=st.booleans(),
)
def test_remove_outliers_is_the_local_median_rule(seed, spacing, window, threshold, quantised):
    """The counting shortcut gives what ``median_filter`` + the threshold gave (issue 14)."""
    from scipy import ndimage

    from skinoct.morphometry import fill_nearest, remove_outliers

    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 40, size=2))
    surface = 50 + 0.3 * rng.normal(0, rng.uniform(0.5, 8), shape).cumsum(axis=1)
    if quantised:  # whole-pixel depths: values exactly at the threshold
        surface = np.round(surface)
    surface[rng.random(shape) < 0.1] = np.nan
    cleaned, outliers = remove_outliers(
        surface, spacing, window_um=window, threshold_um=threshold
    )
    size = tuple(max(1, 2 * round(window / (2 * s)) + 1) for s in spacing)
    median = ndimage.median_filter(fill_nearest(surface), size=size, mode="nearest")
    want = np.isfinite(surface) & (np.abs(surface - median) > threshold)
    np.testing.assert_array_equal(outliers, want)
    np.testing.assert_array_equal(cleaned, np.where(want, median, surface))
