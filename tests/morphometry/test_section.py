"""measure_section on sections with analytic ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from skinoct.errors import InputError
from skinoct.morphometry import measure_section

EXPECTED_KEYS = {
    "spacing_um",
    "stratum_corneum_thickness_um",
    "viable_epidermis_thickness_um",
    "epidermis_thickness_um",
    "dej_undulation_index",
    "dej_rms_amplitude_um",
    "dej_peak_to_valley_um",
    "dermal_papillae",
    "coverage",
}


def test_flat_anisotropic_thickness_exact_within_a_pixel(flat_mask):
    mask, spacing = flat_mask
    m = measure_section(mask, spacing)
    d = m.to_dict()
    assert set(d) == EXPECTED_KEYS
    assert d["spacing_um"] == [0.5, 1.2]
    # analytic: SC 16 - 10 = 6, viable 56 - 16 = 40, epidermis 46 µm; tolerance one dz
    for key, value in [
        ("stratum_corneum_thickness_um", 6.0),
        ("viable_epidermis_thickness_um", 40.0),
        ("epidermis_thickness_um", 46.0),
    ]:
        stats = d[key]
        assert set(stats) == {"mean", "median", "sd", "min", "max"}
        assert stats["mean"] == pytest.approx(value, abs=spacing[0])
        assert stats["min"] == pytest.approx(value, abs=spacing[0])
        assert stats["max"] == pytest.approx(value, abs=spacing[0])
        assert stats["sd"] == pytest.approx(0.0, abs=1e-6)
    assert d["dej_undulation_index"] == pytest.approx(1.0, abs=1e-9)
    assert d["dej_rms_amplitude_um"] == pytest.approx(0.0, abs=1e-6)
    assert d["dermal_papillae"]["count"] == 0
    assert d["coverage"] == {"surface": 1.0, "sc_junction": 1.0, "dej": 1.0}
    np.testing.assert_allclose(m.boundaries.dej, 56.0, atol=spacing[0])


def sinusoid_mask(render_mask, amplitude, period, periods, spacing, phase=0.0):
    dz, dx = spacing
    nx = round(periods * period / dx)
    z0 = 20 + 40 + amplitude
    mask = render_mask(
        (int((z0 + amplitude + 40) / dz), nx),
        spacing,
        lambda x: np.full_like(x, 20.0),
        lambda x: np.full_like(x, 30.0),
        lambda x: z0 + amplitude * np.sin(2 * np.pi * x / period + phase),
    )
    return mask, z0


def _arc_length_ratio(amplitude, period):
    slope = 2 * np.pi * amplitude / period
    length = quad(lambda t: np.sqrt(1 + (slope * np.cos(2 * np.pi * t / period)) ** 2), 0, period)
    return length[0] / period


@pytest.mark.parametrize(
    ("amplitude", "period", "spacing"),
    [(10.0, 100.0, (1.0, 1.0)), (6.0, 60.0, (0.5, 1.2)), (15.0, 80.0, (1.0, 1.0))],
)
def test_sinusoidal_dej(render, amplitude, period, spacing):
    periods = 8
    # cosine phase: symmetric about the section centre, so its least-squares line is flat
    mask, _ = sinusoid_mask(render, amplitude, period, periods, spacing, phase=np.pi / 2)
    d = measure_section(mask, spacing).to_dict()
    truth = _arc_length_ratio(amplitude, period)
    assert d["dej_undulation_index"] == pytest.approx(truth, rel=0.01)
    assert d["dej_rms_amplitude_um"] == pytest.approx(amplitude / np.sqrt(2), rel=0.02)
    assert d["dej_peak_to_valley_um"] == pytest.approx(2 * amplitude, abs=spacing[0])
    assert abs(d["dermal_papillae"]["count"] - periods) <= 1
    assert d["dermal_papillae"]["mean_height_um"] == pytest.approx(2 * amplitude, abs=spacing[0])
    # density: papillae per mm of DEJ
    extent_mm = mask.shape[1] * spacing[1] / 1000
    assert d["dermal_papillae"]["density_per_mm"] == pytest.approx(
        d["dermal_papillae"]["count"] / extent_mm
    )


def test_staircase_would_inflate_length_without_smoothing(render):
    """The issue's premise: the raw per-pixel polyline overestimates the ratio by ~7 %."""
    mask, _ = sinusoid_mask(render, 10.0, 100.0, 8, (1.0, 1.0))
    truth = _arc_length_ratio(10.0, 100.0)
    raw = measure_section(mask, (1.0, 1.0), smoothing_um=0).dej_undulation_index
    smooth = measure_section(mask, (1.0, 1.0)).dej_undulation_index
    assert raw / truth - 1 > 0.04
    assert abs(smooth / truth - 1) < 0.01


def test_tilted_skin_normal_thickness(render):
    tilt = np.deg2rad(25.0)
    slope = np.tan(tilt)
    spacing = (1.0, 1.0)
    mask = render(
        (260, 300),
        spacing,
        lambda x: 20 + slope * x,
        lambda x: 32 + slope * x,
        lambda x: 80 + slope * x,
    )
    vertical = measure_section(mask, spacing).to_dict()
    normal = measure_section(mask, spacing, normal=True).to_dict()
    for key, value in [("stratum_corneum_thickness_um", 12.0), ("epidermis_thickness_um", 60.0)]:
        assert vertical[key]["mean"] == pytest.approx(value, abs=spacing[0])
        assert normal[key]["mean"] == pytest.approx(value * np.cos(tilt), rel=0.02)
    # tilt is not undulation
    assert vertical["dej_rms_amplitude_um"] < 0.5
    assert vertical["dej_undulation_index"] == pytest.approx(1 / np.cos(tilt), rel=0.01)


def test_empty_mask_is_a_clear_error():
    with pytest.raises(InputError, match="no skin"):
        measure_section(np.zeros((10, 10), np.uint8), (1.0, 1.0))


def test_foreign_labels_error():
    mask = np.zeros((10, 10), np.uint8)
    mask[5:] = 7
    with pytest.raises(InputError, match="outside the skinoct labels"):
        measure_section(mask, (1.0, 1.0))


def test_sine_phase_peak_to_valley_is_twice_the_amplitude(render):
    """A sin-phase DEJ over whole periods tilts a least-squares line (PV 10 % too high);
    the crest/trough reference does not: PV = 2 A, RMS = A / √2 (issue 15 §7)."""
    amplitude, period, periods, spacing = 10.0, 100.0, 8, (1.0, 1.0)
    mask, z0 = sinusoid_mask(render, amplitude, period, periods, spacing, phase=0.0)
    d = measure_section(mask, spacing).to_dict()
    x = np.arange(mask.shape[1]) * spacing[1]
    curve = z0 + amplitude * np.sin(2 * np.pi * x / period)
    least_squares = curve - np.polyval(np.polyfit(x, curve, 1), x)
    assert np.ptp(least_squares) > 2 * amplitude * 1.05  # what the old reference read
    assert d["dej_peak_to_valley_um"] == pytest.approx(2 * amplitude, abs=spacing[0])
    assert d["dej_rms_amplitude_um"] == pytest.approx(amplitude / np.sqrt(2), rel=0.02)
