"""measure_volume on volumes with analytic ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import dblquad

from skinoct.errors import InputError
from skinoct.morphometry import measure_volume

VOLUME_KEYS = {
    "spacing_um",
    "stratum_corneum_thickness_um",
    "viable_epidermis_thickness_um",
    "epidermis_thickness_um",
    "dej_undulation_index",
    "dej_surface_area_ratio",
    "dej_rms_amplitude_um",
    "dej_peak_to_valley_um",
    "dermal_papillae",
    "coverage",
}


def _flat(y, x, depth):
    return np.full(np.broadcast(y, x).shape, float(depth))


def test_flat_volume_anisotropic(render):
    spacing = (0.5, 2.0, 1.2)
    mask = render(
        (140, 20, 30),
        spacing,
        lambda y, x: _flat(y, x, 10.2),
        lambda y, x: _flat(y, x, 18.2),
        lambda y, x: _flat(y, x, 50.2),
    )
    m = measure_volume(mask, spacing)
    d = m.to_dict()
    assert set(d) == VOLUME_KEYS
    assert d["spacing_um"] == [0.5, 2.0, 1.2]
    assert set(d["dermal_papillae"]) == {
        "count",
        "density_per_mm2",
        "mean_height_um",
        "mean_width_um",
    }
    for key, value in [
        ("stratum_corneum_thickness_um", 8.0),
        ("viable_epidermis_thickness_um", 32.0),
        ("epidermis_thickness_um", 40.0),
    ]:
        assert d[key]["min"] == pytest.approx(value, abs=spacing[0])
        assert d[key]["max"] == pytest.approx(value, abs=spacing[0])
    for array in (
        m.epidermis_thickness_map_um,
        m.stratum_corneum_thickness_map_um,
        m.viable_epidermis_thickness_map_um,
        m.dej_surface_um,
    ):
        assert array.shape == (20, 30)
    np.testing.assert_allclose(m.dej_surface_um, 50.2, atol=spacing[0])
    np.testing.assert_allclose(m.epidermis_thickness_map_um, 40.0, atol=spacing[0])
    assert d["dej_surface_area_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert d["dej_undulation_index"] == pytest.approx(1.0, abs=1e-9)
    assert m.boundaries.shape == (20, 30)
    np.testing.assert_allclose(m.boundaries.y_um, np.arange(20) * 2.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 1.5, 1.2)])
def test_sinusoidal_dej_surface_area_ratio(render, spacing):
    amplitude, px, py = 8.0, 80.0, 100.0
    fx, fy = 2 * np.pi / px, 2 * np.pi / py

    def dej(y, x):
        return 60 + amplitude * np.sin(fx * x) * np.sin(fy * y)

    mask = render(
        (round(100 / spacing[0]), round(200 / spacing[1]), round(240 / spacing[2])),
        spacing,
        lambda y, x: _flat(y, x, 10.3),
        lambda y, x: _flat(y, x, 20.3),
        dej,
    )
    d = measure_volume(mask, spacing).to_dict()

    # analytic: mean of sqrt(1 + f_x² + f_y²) over one period cell, numerically integrated
    def element(y, x):
        gx = amplitude * fx * np.cos(fx * x) * np.sin(fy * y)
        gy = amplitude * fy * np.sin(fx * x) * np.cos(fy * y)
        return np.sqrt(1 + gx**2 + gy**2)

    truth = dblquad(element, 0, px, 0, py)[0] / (px * py)
    assert truth > 1.05  # the test is not trivially flat
    assert d["dej_surface_area_ratio"] == pytest.approx(truth, rel=0.02)
    # RMS of sin·sin about its plane: A/2
    assert d["dej_rms_amplitude_um"] == pytest.approx(amplitude / 2, rel=0.03)


def _bumps(centres, height, sigma, base):
    def dej(y, x):
        out = np.full(np.broadcast(y, x).shape, base)
        for cy, cx in centres:
            out = out - height * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
        return out

    return dej


def test_papillae_count_height_width_3d(render):
    spacing = (0.5, 1.5, 1.2)
    height, sigma = 12.0, 8.0
    centres = [(40, 50), (40, 150), (110, 60), (120, 170), (60, 230)]
    shape = (180, round(160 / 1.5), round(270 / 1.2))
    mask = render(
        shape,
        spacing,
        lambda y, x: _flat(y, x, 10.0),
        lambda y, x: _flat(y, x, 20.0),
        _bumps(centres, height, sigma, 70.0),
    )
    m = measure_volume(mask, spacing, papilla_prominence_um=5.0)
    papillae = m.to_dict()["dermal_papillae"]
    assert papillae["count"] == len(centres)
    # Gaussian papilla: prominence = height; width at half prominence = FWHM
    assert papillae["mean_height_um"] == pytest.approx(height, abs=spacing[0])
    fwhm = 2 * np.sqrt(2 * np.log(2)) * sigma
    assert papillae["mean_width_um"] == pytest.approx(fwhm, rel=0.03)
    area_mm2 = shape[1] * spacing[1] * shape[2] * spacing[2] / 1e6
    assert papillae["density_per_mm2"] == pytest.approx(len(centres) / area_mm2)
    found = m.papillae.positions_um  # (n, 2) as (y, x) in µm
    for cy, cx in centres:
        assert np.hypot(found[:, 0] - cy, found[:, 1] - cx).min() < 2.0
    # a threshold above the papilla height finds none
    high = measure_volume(mask, spacing, papilla_prominence_um=height + 2)
    assert high.to_dict()["dermal_papillae"]["count"] == 0


def test_tilted_volume_normal_thickness(render):
    tilt = np.deg2rad(20.0)
    ty = np.tan(tilt) * 0.6
    tx = np.tan(tilt) * 0.8  # slope magnitude tan(20°), direction (0.6, 0.8)
    spacing = (1.0, 1.5, 1.5)
    mask = render(
        (170, 60, 60),
        spacing,
        lambda y, x: 15 + ty * y + tx * x,
        lambda y, x: 25 + ty * y + tx * x,
        lambda y, x: 65 + ty * y + tx * x,
    )
    d = measure_volume(mask, spacing, normal=True).to_dict()
    assert d["epidermis_thickness_um"]["median"] == pytest.approx(50 * np.cos(tilt), rel=0.02)
    assert d["stratum_corneum_thickness_um"]["median"] == pytest.approx(10 * np.cos(tilt), rel=0.02)


def test_volume_needs_3d():
    with pytest.raises(InputError, match="3-D"):
        measure_volume(np.ones((4, 4), np.uint8), (1, 1, 1))
    with pytest.raises(InputError, match="spacing needs 3 values"):
        measure_volume(np.ones((4, 4, 4), np.uint8), (1, 1))
