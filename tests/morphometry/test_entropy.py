"""DEJ uncertainty from the segmentation's entropy map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.morphometry import (
    default_entropy_band_um,
    default_entropy_threshold,
    default_min_segment_um,
    measure_section,
    measure_volume,
)

SPACING = (0.5, 1.2)


@pytest.fixture
def section(render):
    """Flat layers; the DEJ at 40.2 µm; 200 columns of 1.2 µm (x = 0 … 238.8 µm)."""
    return render(
        (160, 200),
        SPACING,
        lambda x: np.full_like(x, 8.2),
        lambda x: np.full_like(x, 15.2),
        lambda x: np.full_like(x, 40.2),
    )


def _entropy_at_dej(shape, spacing, columns, value, *, half_height_um=8.0, dej_um=40.2):
    """Entropy ``value`` in a band around the DEJ in ``columns``, 0.05 elsewhere."""
    ent = np.full(shape, 0.05)
    z = np.arange(shape[0]) * spacing[0]
    rows = np.abs(z - dej_um) <= half_height_um
    ent[np.ix_(rows, np.arange(shape[1])[columns])] = value
    return ent


def test_uncertain_segment_at_known_range(section):
    cols = slice(50, 100)  # x = 60.0 … 118.8 µm
    ent = _entropy_at_dej(section.shape, SPACING, cols, 0.9)
    m = measure_section(section, SPACING, entropy=ent, entropy_threshold=0.5, min_segment_um=20,
                        entropy_band_um=5.0)  # fmt: skip
    d = m.to_dict()
    assert d["dej_uncertain_segments"] == [[pytest.approx(60.0), pytest.approx(118.8)]]
    # the band (±5 µm) lies inside the high-entropy rows: profile 0.9 there, 0.05 elsewhere
    np.testing.assert_allclose(m.dej_entropy_profile[cols], 0.9)
    expected_mean = (50 * 0.9 + 150 * 0.05) / 200
    assert d["dej_entropy_mean"] == pytest.approx(expected_mean)


def test_band_half_height_sets_the_rows_averaged(section):
    ent = _entropy_at_dej(section.shape, SPACING, slice(None), 0.9)  # 0.9 within ±8 µm
    narrow = measure_section(section, SPACING, entropy=ent, entropy_band_um=5.0)
    wide = measure_section(section, SPACING, entropy=ent, entropy_band_um=16.0)
    assert narrow.to_dict()["dej_entropy_mean"] == pytest.approx(0.9)
    # ±16 µm of the found DEJ: the rows within ±8 µm of the true one are 0.9, the rest 0.05
    dej = float(np.nanmedian(wide.boundaries.dej))
    z = np.arange(section.shape[0]) * SPACING[0]
    in_band = np.abs(z - dej) <= 16.0
    high = in_band & (np.abs(z - 40.2) <= 8.0)
    expected = (0.9 * high.sum() + 0.05 * (in_band.sum() - high.sum())) / in_band.sum()
    assert wide.to_dict()["dej_entropy_mean"] == pytest.approx(expected)
    assert expected < 0.6  # the two bands really differ
    # the default band is the one the bundled model's threshold was calibrated at
    default = measure_section(section, SPACING, entropy=ent)
    explicit = measure_section(section, SPACING, entropy=ent,
                               entropy_band_um=default_entropy_band_um())  # fmt: skip
    assert default.to_dict() == explicit.to_dict()


def test_default_band_is_the_bundled_calibrations():
    from skinoct.models import bundled_model_dir

    manifest = json.loads((bundled_model_dir("layers") / "model.json").read_text())
    assert default_entropy_band_um() == manifest["uncertainty"]["entropy_band_um"]
    assert default_entropy_threshold() == manifest["uncertainty"]["dej_entropy_threshold"]
    assert default_min_segment_um() == manifest["uncertainty"]["min_segment_um"]


def test_short_segments_are_ignored_and_low_entropy_gives_none(section):
    ent = _entropy_at_dej(section.shape, SPACING, slice(50, 60), 0.9)  # 12 µm long
    d = measure_section(section, SPACING, entropy=ent, min_segment_um=20).to_dict()
    assert d["dej_uncertain_segments"] == []
    # the default is the calibrated minimum (≥ 20 µm): not flagged either
    assert measure_section(section, SPACING, entropy=ent).to_dict()["dej_uncertain_segments"] == []
    d = measure_section(section, SPACING, entropy=ent, min_segment_um=10).to_dict()
    assert len(d["dej_uncertain_segments"]) == 1
    quiet = np.full(section.shape, 0.1)
    d = measure_section(section, SPACING, entropy=quiet).to_dict()
    assert d["dej_uncertain_segments"] == []
    assert d["dej_entropy_mean"] == pytest.approx(0.1)


def test_disrupted_dej_gap_is_still_sampled(section):
    """Where the mask shows no DEJ (a disruption), the DEJ is bridged to sample entropy."""
    mask = section.copy()
    gap = slice(120, 150)
    mask[:, gap] = np.where(mask[:, gap] == 3, 2, mask[:, gap])
    ent = _entropy_at_dej(mask.shape, SPACING, gap, 0.8)
    m = measure_section(mask, SPACING, entropy=ent, min_segment_um=20.0)
    assert m.coverage["dej"] == pytest.approx(170 / 200)
    assert m.to_dict()["dej_uncertain_segments"] == [[pytest.approx(144.0), pytest.approx(178.8)]]


def test_no_entropy_keys_without_entropy(section):
    d = measure_section(section, SPACING).to_dict()
    assert "dej_entropy_mean" not in d and "dej_uncertain_segments" not in d


def test_entropy_validation(section):
    with pytest.raises(InputError, match="shape"):
        measure_section(section, SPACING, entropy=np.zeros((3, 3)))
    with pytest.raises(InputError, match="normalised"):
        measure_section(section, SPACING, entropy=np.full(section.shape, 1.3))
    with pytest.raises(InputError, match="entropy_threshold"):
        measure_section(section, SPACING, entropy=np.zeros(section.shape), entropy_threshold=2)


def test_volume_uncertain_area(render):
    spacing = (1.0, 1.0, 1.0)
    shape = (60, 50, 80)

    def flat(depth):
        return lambda y, x: np.full(np.broadcast(y, x).shape, depth)

    mask = render(shape, spacing, flat(5.2), flat(12.2), flat(30.2))
    ent = np.full(shape, 0.05)
    ent[22:39, 10:30, 20:50] = 0.9  # 20 × 30 µm patch at the DEJ
    ent[22:39, 40:45, 60:65] = 0.9  # 5 × 5 µm patch: smaller than 20 µm × 20 µm, dropped
    m = measure_volume(mask, spacing, entropy=ent, min_segment_um=20)
    d = m.to_dict()
    assert "dej_uncertain_segments" not in d
    assert d["dej_uncertain_area_fraction"] == pytest.approx(600 / (50 * 80))
    assert m.dej_uncertain_map.shape == (50, 80)
    assert m.dej_uncertain_map[10:30, 20:50].all()
    assert not m.dej_uncertain_map[40:45, 60:65].any()
    assert m.dej_entropy_map[0, 0] == pytest.approx(0.05)


def _scan_reference(entropy, dej, dz_um, half):
    """The full row scan ``dej_entropy`` replaced: every row tested, in increasing depth."""
    total = np.zeros(dej.shape)
    count = np.zeros(dej.shape)
    for k in range(entropy.shape[0]):
        inside = np.abs(k * dz_um - dej) <= half
        total += np.where(inside, entropy[k], 0.0)
        count += inside
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return np.where(np.isfinite(dej) & (count > 0), out, np.nan)


@settings(max_examples=60, deadline=None)
@given(
    nz=st.integers(1, 40),
    shape=st.sampled_from([(7,), (3, 5)]),
    dz=st.sampled_from([0.25, 0.5, 1.0, 1.3, 3.0]),
    band=st.sampled_from([0.0, 0.4, 2.0, 5.0]),
    seed=st.integers(0, 2**16),
)
def test_dej_entropy_equals_the_full_row_scan_bit_for_bit(nz, shape, dz, band, seed):
    from skinoct.morphometry import dej_entropy
    from skinoct.morphometry._entropy import _interpolate_gaps_1d

    rng = np.random.default_rng(seed)
    entropy = rng.random((nz, *shape)).astype(np.float32)
    # DEJs above, inside and below the image, on row centres and between them, with gaps
    dej = rng.choice([-7.0, -0.5, 0.0, nz * dz, nz * dz + 9.0, np.nan], size=shape)
    dej = np.where(rng.random(shape) < 0.6, rng.uniform(-3, nz * dz + 3, shape), dej)
    dej = np.where(rng.random(shape) < 0.2, np.round(dej / dz) * dz, dej)
    got = dej_entropy(entropy, dej, dz, band_um=band)
    filled = np.apply_along_axis(_interpolate_gaps_1d, -1, dej)
    want = _scan_reference(entropy, filled, dz, max(band, 0.5 * dz))
    np.testing.assert_array_equal(got, want)
