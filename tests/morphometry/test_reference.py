"""The DEJ's peak-to-valley / RMS reference removes tilt, not undulation (issue 15 §7).

Analytic DEJs: ``z = 100 + 20 sin(2πx/P + φ) + s·x`` µm, P = 90 µm, sampled every
1 µm. The expected peak-to-valley is that of the sampled sinusoid itself (≤ 40 µm;
sampling can miss the exact crest by < 0.03 µm). The reference's slope comes from the
crests and troughs (docs/morphometry.md): with two or more periods in the field it
recovers the sinusoid to < 0.01 µm, with gaps too (a sweep of 2–12 periods, 6 phases,
3 tilts gave a worst error of 0.000 µm); below two periods it falls back towards the
least-squares line (up to 5 µm off at 1.2–2 periods).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.morphometry import peak_to_valley, rms_amplitude

A, P = 20.0, 90.0


def sinusoid(periods: float, *, phase: float = 0.0, slope: float = 0.0, dx: float = 1.0):
    x = np.arange(round(periods * P / dx)) * dx
    wave = A * np.sin(2 * np.pi * x / P + phase)
    return 100 + wave + slope * x, wave


@pytest.mark.parametrize(
    ("periods", "tolerance_um"),
    [(5, 0.01), (5.25, 0.01), (5.5, 0.01), (6.8, 0.01), (10, 0.01), (12.3, 0.01), (4.4, 0.01),
     (2.0, 0.01), (2.6, 0.01), (3.3, 0.01)],
)
@pytest.mark.parametrize("phase", [0.0, 0.9, 2.2, 4.0])
@pytest.mark.parametrize("slope", [0.0, 0.25, -0.4])
def test_sinusoid_peak_to_valley_is_twice_the_amplitude(periods, tolerance_um, phase, slope):
    depth, wave = sinusoid(periods, phase=phase, slope=slope)
    expected = wave.max() - wave.min()
    assert expected == pytest.approx(40.0, abs=0.03)
    assert peak_to_valley(depth, (1.0,)) == pytest.approx(expected, abs=tolerance_um)


def test_five_whole_periods_no_longer_read_45_um():
    """The issue's case: the plain least-squares line gave 45.3 µm here."""
    depth, _ = sinusoid(5)
    x = np.arange(depth.size, dtype=float)
    plain = depth - np.polyval(np.polyfit(x, depth, 1), x)
    assert plain.max() - plain.min() == pytest.approx(45.3, abs=0.1)  # the old reference
    assert peak_to_valley(depth, (1.0,)) == pytest.approx(40.0, abs=0.03)


@pytest.mark.parametrize("periods", [5, 5.5, 8])
def test_rms_of_a_sinusoid(periods):
    depth, wave = sinusoid(periods, phase=0.7, slope=0.3)
    # RMS of the sinusoid about its own mean (fractional periods: not exactly A/√2)
    expected = float(np.sqrt(np.mean((wave - wave.mean()) ** 2)))
    assert rms_amplitude(depth, (1.0,)) == pytest.approx(expected, abs=0.25)
    assert rms_amplitude(depth, (1.0,)) == pytest.approx(A / np.sqrt(2), rel=0.02)


def test_surface_with_tilted_plane_and_egg_crate_undulation():
    """3-D: z = 20 sin(2πx/P) sin(2πy/P) on a tilted plane, 5.5 × 3.3 periods."""
    y = np.arange(int(3.3 * P))[:, None] * 1.0
    x = np.arange(int(5.5 * P))[None, :] * 1.0
    wave = A * np.sin(2 * np.pi * x / P) * np.sin(2 * np.pi * y / P)
    depth = 80 + wave + 0.2 * x - 0.15 * y
    assert peak_to_valley(depth, (1.0, 1.0)) == pytest.approx(wave.max() - wave.min(), abs=0.01)
    assert rms_amplitude(depth, (1.0, 1.0)) == pytest.approx(np.sqrt(np.mean(wave**2)), abs=0.2)


def test_gaps_spacing_and_pure_tilt():
    depth, wave = sinusoid(6.5, phase=1.0, slope=0.2, dx=2.0)
    for start, length in ((40, 45), (100, 20), (0, 30), (140, 60)):
        holed = depth.copy()
        holed[start : start + length] = np.nan  # no DEJ found there
        seen = wave[np.isfinite(holed)]
        assert peak_to_valley(holed, (2.0,)) == pytest.approx(seen.max() - seen.min(), abs=0.01)
    line = 3.0 + 0.7 * np.arange(50)
    assert peak_to_valley(line, (1.0,)) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(peak_to_valley(np.full(5, np.nan), (1.0,)))


@settings(max_examples=40, deadline=None)
@given(
    slope_x=st.floats(-2, 2),
    slope_y=st.floats(-2, 2),
    offset=st.floats(-500, 500),
)
def test_tilt_and_offset_never_change_the_measures(slope_x, slope_y, offset):
    """Invariance: adding any plane to a DEJ surface leaves PV and RMS unchanged."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 5, (20, 30))
    yy, xx = np.mgrid[0:20, 0:30] * np.array([2.0, 1.5])[:, None, None]
    tilted = base + offset + slope_x * xx + slope_y * yy
    for f in (peak_to_valley, rms_amplitude):
        assert f(tilted, (2.0, 1.5)) == pytest.approx(f(base, (2.0, 1.5)), abs=1e-6)
