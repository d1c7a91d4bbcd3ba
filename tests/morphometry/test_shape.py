"""Unit tests of the shape functions: smoothing, contour ratio, papillae, flattening."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinoct.morphometry import (
    contour_length_ratio,
    find_papillae_profile,
    find_papillae_surface,
    flatten_metrics,
    measure_section,
    peak_to_valley,
    rms_amplitude,
    smooth_boundary,
    surface_area_ratio,
)


@pytest.mark.parametrize("period", [40.0, 100.0])
def test_local_quadratic_keeps_undulation_amplitude(period):
    """Interior response (1 + t)·exp(−t), t = σ²ω²/2 (analytic for the local quadratic)."""
    x = np.arange(2000) * 0.5
    sigma = 2.0
    values = np.sin(2 * np.pi * x / period)
    smooth = smooth_boundary(values, (0.5,), sigma_um=sigma)
    t = sigma**2 * (2 * np.pi / period) ** 2 / 2
    gain = np.abs(smooth[200:-200]).max()
    assert gain == pytest.approx((1 + t) * np.exp(-t), abs=2e-3)
    assert gain > 0.99


def test_smoothing_keeps_gaps_and_quadratics():
    x = np.arange(100.0)
    values = 0.01 * (x - 40) ** 2 + 3
    values[30:35] = np.nan
    out = smooth_boundary(values, (1.0,), sigma_um=3.0)
    assert np.isnan(out[30:35]).all() and np.isfinite(np.delete(out, range(30, 35))).all()
    # a quadratic is reproduced wherever the fit is quadratic (away from edges and gaps)
    np.testing.assert_allclose(out[45:90], values[45:90], atol=1e-6)
    np.testing.assert_array_equal(smooth_boundary(values, (1.0,), sigma_um=0), values)
    with pytest.raises(ValueError, match="sigma_um"):
        smooth_boundary(values, (1.0,), sigma_um=-1)
    # 2-D: a plane is reproduced everywhere, edges included
    yy, xx = np.mgrid[0:30, 0:40] * 1.5
    plane = 2 + 0.3 * yy - 0.2 * xx
    smooth = smooth_boundary(plane, (1.5, 1.5), sigma_um=3.0)
    np.testing.assert_allclose(smooth, plane, atol=1e-4)  # the tiny ridge biases edges


def test_contour_ratio_and_area_ratio_of_lines_and_planes():
    x = np.arange(50.0)
    line = 3 + 0.75 * x  # slope 3/4: length ratio 5/4
    assert contour_length_ratio(line, 1.0) == pytest.approx(1.25)
    gapped = line.copy()
    gapped[20:25] = np.nan  # runs on both sides, extent counted without the gap
    assert contour_length_ratio(gapped, 1.0) == pytest.approx(1.25)
    assert np.isnan(contour_length_ratio(np.full(5, np.nan), 1.0))
    yy, xx = np.mgrid[0:20, 0:30]
    plane = 0.3 * yy * 2.0 + 0.4 * xx * 0.5  # slopes 0.3 and 0.4 per µm
    assert surface_area_ratio(plane, (2.0, 0.5)) == pytest.approx(np.sqrt(1 + 0.09 + 0.16))
    assert rms_amplitude(plane, (2.0, 0.5)) == pytest.approx(0.0, abs=1e-9)
    assert peak_to_valley(line, (1.0,)) == pytest.approx(0.0, abs=1e-9)


def _gaussian_dips(x, centres, height, sigma, base=70.0):
    out = np.full_like(x, base, dtype=float)
    for c in centres:
        out -= height * np.exp(-((x - c) ** 2) / (2 * sigma**2))
    return out


def test_papillae_profile_count_height_width():
    dx = 0.8
    x = np.arange(500) * dx
    centres = [60.0, 148.0, 240.0, 328.0]  # on the sampling grid: the apex is sampled
    depth = _gaussian_dips(x, centres, height=9.0, sigma=7.0)
    p = find_papillae_profile(depth, dx, prominence_um=5.0)
    assert p.count == 4
    np.testing.assert_allclose(p.positions_um, centres, atol=1e-9)
    np.testing.assert_allclose(p.heights_um, 9.0, atol=1e-6)
    np.testing.assert_allclose(p.widths_um, 2 * np.sqrt(2 * np.log(2)) * 7.0, rtol=0.01)
    s = p.summary(per="mm")
    assert s["density_per_mm"] == pytest.approx(4 / (500 * dx / 1000))
    assert find_papillae_profile(depth, dx, prominence_um=9.5).count == 0


def test_twin_apexes_count_once_and_cut_papillae_are_flagged():
    x = np.arange(400.0)
    depth = _gaussian_dips(x, [100, 250], height=10.0, sigma=8.0)
    # a flat-topped papilla whose apex holds two equal minima 4 µm apart
    depth[96:105] = depth.min()
    depth[100] += 0.2
    p = find_papillae_profile(depth, 1.0, prominence_um=5.0)
    assert p.count == 2
    # a papilla whose valley on one side is outside the profile: counted, not averaged
    cut = _gaussian_dips(x, [100, 250, 385], height=10.0, sigma=8.0)
    cut[385:] = cut[385] + 0.01 * (np.arange(385, 400) - 385)  # rises to the edge only a bit
    q = find_papillae_profile(cut[:392], 1.0, prominence_um=0.01)
    assert q.truncated.tolist()[-1] is True
    summary = q.summary(per="mm")
    assert summary["mean_height_um"] == pytest.approx(10.0, abs=1e-3)


def test_papillae_surface_ties_and_border():
    yy, xx = np.mgrid[0:80, 0:120].astype(float)
    depth = np.full(yy.shape, 60.0)
    for cy, cx in [(40, 30), (40, 90)]:  # two identical papillae: a tie
        depth -= 8.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2))
    p = find_papillae_surface(depth, (1.0, 1.0), prominence_um=5.0)
    assert p.count == 2
    np.testing.assert_allclose(p.heights_um, 8.0, atol=1e-3)  # both, not one tie-winner
    # a papilla centred on the border is not counted
    depth -= 8.0 * np.exp(-((yy - 0) ** 2 + (xx - 60) ** 2) / (2 * 6.0**2))
    assert find_papillae_surface(depth, (1.0, 1.0), prominence_um=5.0).count == 2


def test_flatten_metrics_for_tables(render):
    mask = render(
        (80, 60),
        (1.0, 1.0),
        lambda x: np.full_like(x, 5.2),
        lambda x: np.full_like(x, 12.2),
        lambda x: np.full_like(x, 40.2),
    )
    d = measure_section(mask, (1.0, 1.0), entropy=np.zeros(mask.shape)).to_dict()
    flat = flatten_metrics(d)
    assert flat["epidermis_thickness_um_mean"] == d["epidermis_thickness_um"]["mean"]
    assert flat["dermal_papillae_count"] == 0
    assert flat["coverage_dej"] == 1.0
    assert json.loads(flat["spacing_um"]) == [1.0, 1.0]
    assert json.loads(flat["dej_uncertain_segments"]) == []
    assert all(not isinstance(v, (dict, list)) for v in flat.values())
    json.dumps(d, allow_nan=False)  # strictly JSON: no NaN
