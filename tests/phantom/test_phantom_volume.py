"""3-D volumes: labels against surfaces, sections against render_section, q(depth)."""

import numpy as np
import pytest
from test_phantom_enface import coherence

from skinoct.errors import InputError
from skinoct.io import AIR, DERMIS, EPIDERMIS, STRATUM_CORNEUM
from skinoct.phantom import (
    EnfaceParams,
    SectionParams,
    VolumeParams,
    render_enface,
    render_section,
    render_volume,
)

SMALL = VolumeParams(size_um=(200.0, 48.0, 160.0))


def test_volume_shape_dtype_and_ground_truth_arrays():
    vol = render_volume(SMALL, seed=0)
    assert vol.volume.shape == (200, 48, 160) and vol.volume.dtype == np.float32
    assert vol.labels.shape == vol.volume.shape and vol.labels.dtype == np.uint8
    assert vol.volume.min() > 0 and np.all(np.isfinite(vol.volume))
    for surface in (vol.surface_um, vol.sc_junction_um, vol.dej_um):
        assert surface.shape == (48, 160)
    assert vol.spacing_um == (1.0, 1.0, 1.0)
    # q is given every 1 µm from the DEJ, at least over the scored 0–70 µm.
    assert vol.depths_um[0] == 0 and np.all(np.diff(vol.depths_um) == 1.0)
    assert vol.depths_um[-1] >= 70
    assert vol.q_profile.shape == vol.depths_um.shape


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"spacing_um": (2.0, 1.5, 0.8), "tilt_deg": 10.0, "tilt_y_deg": -8.0, "curvature": 1.5}],
)
def test_labels_match_boundary_surfaces_exactly(kwargs):
    params = VolumeParams(size_um=(200.0, 40.0, 120.0), n_protrusions=2, **kwargs)
    vol = render_volume(params, seed=1)
    dz = vol.spacing_um[0]
    for surface, top in (
        (vol.surface_um, AIR),
        (vol.sc_junction_um, STRATUM_CORNEUM),
        (vol.dej_um, EPIDERMIS),
    ):
        count = (vol.labels <= top).sum(axis=0)
        visible = np.isfinite(surface)
        assert visible.mean() > 0.5
        np.testing.assert_array_equal(count[visible], np.ceil(surface[visible] / dz))


def test_vertical_sections_look_like_render_section():
    # Same skin model: per-layer intensity levels and layer thicknesses agree.
    vol = render_volume(VolumeParams(size_um=(220.0, 140.0, 400.0)), seed=2)
    sec = render_section(SectionParams(width_um=400.0, depth_um=220.0), seed=2)
    for label in (STRATUM_CORNEUM, EPIDERMIS, DERMIS):
        v = np.median(vol.volume[:, 70, :][vol.labels[:, 70, :] == label])
        s = np.median(sec.image[sec.labels == label])
        assert v == pytest.approx(s, rel=0.25), label
    epi_vol = np.nanmean(vol.dej_um - vol.sc_junction_um)
    epi_sec = np.nanmean(sec.boundaries_um["dej"] - sec.boundaries_um["sc_junction"])
    assert epi_vol == pytest.approx(epi_sec, rel=0.02)
    # DEJ amplitude (sqrt(2) x RMS) is the parameter, 10 µm, in both.
    rms_vol = np.nanstd(vol.dej_um - vol.sc_junction_um)
    assert rms_vol * np.sqrt(2) == pytest.approx(10.0, rel=0.2)


def _flatten(vol, d_um: float) -> np.ndarray:
    """En-face image at constant depth ``d_um`` below the local DEJ."""
    dz = vol.spacing_um[0]
    z = np.round((vol.dej_um + d_um) / dz).astype(int)
    y, x = np.indices(z.shape)
    return vol.volume[z, y, x]


def test_enface_texture_follows_q_below_the_local_dej():
    # q = 4 in the upper dermis, 1 deeper: the texture statistic measured on slices
    # that follow the undulating DEJ must switch with it.
    params = VolumeParams(size_um=(260.0, 160.0, 160.0), noise=0.5, dej_amplitude_um=16.0)
    vol = render_volume(params, seed=3, q_profile=lambda d: np.where(d < 50, 4.0, 1.0))
    upper = [coherence(_flatten(vol, d)) for d in (10, 20, 30)]
    deeper = [coherence(_flatten(vol, d)) for d in (75, 85, 95)]
    assert min(upper) > 2 * max(deeper)
    assert vol.mean_q == pytest.approx((50 * 4.0 + 21 * 1.0) / 71)


@pytest.mark.parametrize("q", [1.0, 4.0])
def test_enface_slices_of_a_volume_match_render_enface(q):
    # Same texture model: slices that follow the DEJ show the structure-tensor
    # coherence of render_enface tiles of the same q (4 slices vs 4 tiles; the
    # per-image spread is ~0.05).
    vol = render_volume(VolumeParams(size_um=(240.0, 128.0, 128.0)), seed=5,
                        q_profile=lambda d: np.full_like(d, q))  # fmt: skip
    in_volume = np.mean([coherence(_flatten(vol, d)) for d in (15, 30, 45, 60)])
    tiles = np.mean(
        [
            coherence(render_enface(q, EnfaceParams(size_um=128.0), seed=s).stack[1])
            for s in range(4)
        ]
    )
    assert in_volume == pytest.approx(tiles, abs=0.1)


def test_adjacent_enface_slices_correlated_more_than_distant():
    vol = render_volume(VolumeParams(size_um=(220.0, 96.0, 96.0), noise=0.0), seed=4)
    base = _flatten(vol, 20).ravel()

    def corr(lag):
        return np.corrcoef(base, _flatten(vol, 20 + lag).ravel())[0, 1]

    assert corr(1) > 0.6 > 0.2 > abs(corr(15))


def test_q_profile_forms():
    depths = np.arange(0.0, 71.0)
    a = render_volume(SMALL, seed=5, q_profile=lambda d: 3.0 - d / 100)
    np.testing.assert_allclose(a.q_profile[:71], 3.0 - depths / 100)
    b = render_volume(SMALL, seed=5, q_profile=np.array([2.0, 2.5, 3.0]))
    np.testing.assert_allclose(b.q_profile[:4], [2.0, 2.5, 3.0, 3.0])  # held deeper
    c = render_volume(VolumeParams(size_um=(200.0, 48.0, 160.0), q_profile=[9.0, 0.0]), seed=5)
    assert c.q_profile[0] == 4.0 and c.q_profile[1] == 1.0  # clipped to [1, 4]
    default = render_volume(SMALL, seed=5)
    np.testing.assert_allclose(default.q_profile[:71], 3.2 - 0.01 * depths)
    # Only the texture below the DEJ changes with q; the geometry stays.
    np.testing.assert_array_equal(a.labels, b.labels)


def test_same_seed_same_volume():
    a, b = render_volume(SMALL, seed=7), render_volume(SMALL, seed=7)
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.volume, render_volume(SMALL, seed=8).volume)


@pytest.mark.parametrize(
    ("q_profile", "match"),
    [
        (lambda d: np.ones(3), "must return shape"),
        (lambda d: d * np.nan, "non-finite"),
        (np.ones((2, 2)), "1-D"),
    ],
)
def test_bad_q_profiles(q_profile, match):
    with pytest.raises(InputError, match=match):
        render_volume(SMALL, q_profile=q_profile)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size_um": (100.0, 50.0)}, r"size_um must be 3 numbers"),
        ({"size_um": (5.0, 50.0, 50.0)}, r"size_um \(z\)"),
        ({"spacing_um": (1.0, 1.0)}, "spacing needs 3 values"),
        ({"tilt_y_deg": 60.0}, "tilt_y_deg"),
        ({"q_profile": [1.0, float("inf")]}, "q_profile must be a callable or a 1-D array"),
    ],
)
def test_bad_volume_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        VolumeParams(**kwargs)
    with pytest.raises(InputError, match="params must be a VolumeParams"):
        render_volume(SectionParams())
