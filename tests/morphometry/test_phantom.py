"""Cross-check with the phantom: its ground-truth masks give back its geometry."""

from __future__ import annotations

import numpy as np
import pytest

from skinoct.morphometry import (
    BOUNDARY_NAMES,
    contour_length_ratio,
    extract_boundaries,
    find_papillae_profile,
    measure_section,
    measure_volume,
    rms_amplitude,
    surface_area_ratio,
)
from skinoct.phantom import SectionParams, VolumeParams, render_section, render_volume


def _params(**changes) -> SectionParams:
    base = {
        "width_um": 800.0,
        "depth_um": 220.0,
        "spacing_um": (0.5, 1.0),
        "surface_depth_um": 40.3,
        "roughness_um": 0.0,
        "sc_thickness_um": 15.0,
        "epidermis_thickness_um": 60.0,
        "dej_amplitude_um": 10.0,
        "dej_wavelength_um": 100.0,
        "n_protrusions": 0,
        "noise": 0.0,
    }
    base.update(changes)
    return SectionParams(**base)


@pytest.fixture(scope="module")
def flat_section():
    return render_section(_params(), seed=3)


def test_boundaries_match_phantom_curves_column_by_column(flat_section):
    sec = flat_section
    dz = sec.spacing_um[0]
    raw = extract_boundaries(sec.labels, sec.spacing_um, smoothing_um=0)
    for name in BOUNDARY_NAMES:
        truth = sec.boundaries_um[name]
        # same sampling convention (row i at i·dz): every column within half a pixel
        assert np.abs(raw[name] - truth).max() <= dz / 2 + 1e-6, name
    smooth = extract_boundaries(sec.labels, sec.spacing_um)
    for name in BOUNDARY_NAMES:
        err = smooth[name] - sec.boundaries_um[name]
        assert np.sqrt(np.mean(err**2)) < 0.25, name


def test_metrics_equal_phantom_parameters(flat_section):
    sec = flat_section
    p = sec.params
    dz, dx = sec.spacing_um
    truth = sec.boundaries_um
    d = measure_section(sec.labels, sec.spacing_um).to_dict()
    assert d["coverage"] == {"surface": 1.0, "sc_junction": 1.0, "dej": 1.0}
    # viable epidermis: the phantom's undulation has zero mean, so its mean is the parameter
    assert d["viable_epidermis_thickness_um"]["mean"] == pytest.approx(p.epidermis_um, abs=dz)
    # SC: the parameter is the mean of a ±8 % random field; the exact curves give its value
    sc_truth = np.mean(truth["sc_junction"] - truth["surface"])
    assert sc_truth == pytest.approx(p.sc_um, rel=0.08)
    assert d["stratum_corneum_thickness_um"]["mean"] == pytest.approx(sc_truth, abs=dz)
    epi_truth = np.mean(truth["dej"] - truth["surface"])
    assert d["epidermis_thickness_um"]["mean"] == pytest.approx(epi_truth, abs=dz)
    # DEJ shape against the same quantities on the exact curve
    assert d["dej_undulation_index"] == pytest.approx(
        contour_length_ratio(truth["dej"], dx), rel=0.01
    )
    assert d["dej_rms_amplitude_um"] == pytest.approx(rms_amplitude(truth["dej"], (dx,)), rel=0.02)
    expected = find_papillae_profile(truth["dej"], dx, prominence_um=5.0)
    assert abs(d["dermal_papillae"]["count"] - expected.count) <= 1


def test_dej_amplitude_parameter_is_recovered_on_average():
    """``dej_amplitude_um`` is √2 × the RMS of a random field: recovered over seeds."""
    amplitude = 10.0
    rms = []
    for seed in range(4):
        sec = render_section(_params(width_um=3000.0, spacing_um=(1.0, 1.0)), seed=seed)
        rms.append(measure_section(sec.labels, sec.spacing_um).dej_rms_amplitude_um)
    # 3 mm sections: the RMS of one realisation scatters by ≈ 6 %, of four by ≈ 3 %
    assert np.sqrt(np.mean(np.square(rms))) == pytest.approx(amplitude / np.sqrt(2), rel=0.1)


def test_tilted_phantom_normal_thickness_and_cut_surface():
    tilt = 15.0
    sec = render_section(_params(depth_um=260.0, tilt_deg=tilt, surface_depth_um=60.0), seed=3)
    truth = sec.boundaries_um
    m = measure_section(sec.labels, sec.spacing_um, normal=True)
    # the phantom's SC thickness is perpendicular to the skin: vertical × cos(tilt)
    perpendicular = np.nanmean(truth["sc_junction"] - truth["surface"]) * np.cos(np.deg2rad(tilt))
    assert m.stratum_corneum_thickness_um["mean"] == pytest.approx(perpendicular, rel=0.02)
    # the skin leaves the image at the top left: same columns missing as in the truth
    for name in BOUNDARY_NAMES:
        assert m.coverage[name] == pytest.approx(np.mean(np.isfinite(truth[name])))
    assert m.coverage["surface"] < 0.9


def test_phantom_volume_surfaces_and_metrics():
    params = VolumeParams(
        size_um=(160.0, 160.0, 200.0),
        spacing_um=(0.5, 1.0, 1.0),
        surface_depth_um=30.3,
        roughness_um=0.0,
        sc_thickness_um=15.0,
        epidermis_thickness_um=60.0,
        dej_amplitude_um=10.0,
        dej_wavelength_um=80.0,
        n_protrusions=0,
        noise=0.0,
    )
    vol = render_volume(params, seed=2)
    dz, dy, dx = vol.spacing_um
    truth = {"surface": vol.surface_um, "sc_junction": vol.sc_junction_um, "dej": vol.dej_um}
    raw = extract_boundaries(vol.labels, vol.spacing_um, smoothing_um=0)
    for name in BOUNDARY_NAMES:
        assert np.abs(raw[name] - truth[name]).max() <= dz / 2 + 1e-6, name
    m = measure_volume(vol.labels, vol.spacing_um)
    d = m.to_dict()
    assert d["viable_epidermis_thickness_um"]["mean"] == pytest.approx(params.epidermis_um, abs=dz)
    sc_truth = np.mean(truth["sc_junction"] - truth["surface"])
    assert d["stratum_corneum_thickness_um"]["mean"] == pytest.approx(sc_truth, abs=dz)
    np.testing.assert_allclose(
        m.epidermis_thickness_map_um, truth["dej"] - truth["surface"], atol=1.0
    )
    assert d["dej_surface_area_ratio"] == pytest.approx(
        surface_area_ratio(truth["dej"], (dy, dx)), rel=0.01
    )
    assert d["dej_rms_amplitude_um"] == pytest.approx(
        rms_amplitude(truth["dej"], (dy, dx)), rel=0.02
    )
