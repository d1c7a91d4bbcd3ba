"""Vertical sections: ground truth against pixels, parameters against statistics."""

import math

import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import AIR, DERMIS, EPIDERMIS, STRATUM_CORNEUM
from skinoct.phantom import SITES, PhantomSection, SectionParams, render_section

SMALL = {"width_um": 400.0, "depth_um": 240.0}


def _label_counts(sec: PhantomSection):
    """Per column: number of rows above each boundary, read from the labels."""
    labels = sec.labels
    return {
        "surface": (labels == AIR).sum(axis=0),
        "sc_junction": (labels <= STRATUM_CORNEUM).sum(axis=0),
        "dej": (labels <= EPIDERMIS).sum(axis=0),
    }


def test_default_section_shape_dtype_and_labels():
    sec = render_section(seed=0)
    assert sec.image.shape == (512, 1200) and sec.image.dtype == np.float32
    assert sec.labels.shape == (512, 1200) and sec.labels.dtype == np.uint8
    assert sec.spacing_um == (1.0, 1.0)
    assert np.all(np.isfinite(sec.image)) and sec.image.min() > 0
    assert set(np.unique(sec.labels).tolist()) == {AIR, STRATUM_CORNEUM, EPIDERMIS, DERMIS}
    for name in ("surface", "sc_junction", "dej"):
        assert sec.boundaries_um[name].shape == (1200,)
    # Labels are ordered top to bottom in every column (air, SC, epidermis, dermis).
    assert np.all(np.diff(sec.labels.astype(int), axis=0) >= 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"spacing_um": (0.8, 1.5), "tilt_deg": 12.0, "curvature": 0.8},
        {"site": "palm", "n_protrusions": 4, "spacing_um": (2.0, 0.5), "depth_um": 400.0},
        {"surface_depth_um": 5.0, "tilt_deg": -20.0},  # surface leaves the image
    ],
)
def test_labels_match_boundary_curves_exactly(kwargs):
    # Row i samples depth i*dz and is below a boundary b iff i*dz >= b, so the
    # number of rows above b is ceil(b/dz) (analytic, no tolerance).
    sec = render_section(SectionParams(**{**SMALL, **kwargs}), seed=3)
    dz = sec.spacing_um[0]
    counts = _label_counts(sec)
    for name, count in counts.items():
        b = sec.boundaries_um[name]
        visible = np.isfinite(b)
        assert visible.any()
        np.testing.assert_array_equal(count[visible], np.ceil(b[visible] / dz).astype(int))
        # NaN exactly where the boundary has no sample on one side.
        hidden = ~visible
        assert np.all((count[hidden] == 0) | (count[hidden] == sec.labels.shape[0]))


@pytest.mark.parametrize("site", sorted(SITES))
def test_site_thickness_statistics_match_parameters(site):
    # Flat, untilted skin: vertical thickness = perpendicular thickness.
    params = SectionParams(site=site, depth_um=400.0, dej_amplitude_um=8.0)
    sc, epi = [], []
    for seed in range(4):
        sec = render_section(params, seed=seed)
        b = sec.boundaries_um
        sc.append(np.nanmean(b["sc_junction"] - b["surface"]))
        epi.append(np.nanmean(b["dej"] - b["sc_junction"]))
    # SC thickness varies by 8 % with a 60 µm correlation length: the mean of 4 x
    # 1200 µm is within ~2 %; the undulation is mean-free by construction.
    assert np.mean(sc) == pytest.approx(SITES[site].sc_thickness_um, rel=0.04)
    assert np.mean(epi) == pytest.approx(SITES[site].epidermis_thickness_um, rel=0.01)


def test_explicit_thickness_overrides_site():
    sec = render_section(
        SectionParams(site="palm", sc_thickness_um=20.0, epidermis_thickness_um=50.0), seed=1
    )
    b = sec.boundaries_um
    assert np.nanmean(b["sc_junction"] - b["surface"]) == pytest.approx(20.0, rel=0.06)
    assert np.nanmean(b["dej"] - b["sc_junction"]) == pytest.approx(50.0, rel=0.02)


def test_dej_amplitude_is_sqrt2_rms():
    rms = []
    for seed in range(6):
        sec = render_section(SectionParams(depth_um=300.0, dej_amplitude_um=20.0), seed=seed)
        b = sec.boundaries_um
        rms.append(np.nanstd(b["dej"] - b["sc_junction"]))
    # amplitude = sqrt(2) * RMS (definition); 6 sections of ~12 papillae each.
    assert np.mean(rms) * math.sqrt(2) == pytest.approx(20.0, rel=0.15)
    flat = render_section(SectionParams(depth_um=300.0, dej_amplitude_um=0.0), seed=0)
    b = flat.boundaries_um
    assert np.nanstd(b["dej"] - b["sc_junction"]) < 0.1 * np.nanstd(b["sc_junction"] - 60.0) + 1.0


@pytest.mark.parametrize("tilt", [-15.0, 0.0, 10.0])
def test_tilt_sets_surface_slope_and_thickens_layers_vertically(tilt):
    sec = render_section(SectionParams(**SMALL, tilt_deg=tilt, roughness_um=0.0), seed=2)
    x = sec.x_um
    slope = np.polyfit(x, sec.boundaries_um["surface"], 1)[0]
    assert slope == pytest.approx(math.tan(math.radians(tilt)), abs=1e-9)
    b = sec.boundaries_um
    sc_vertical = np.nanmean(b["sc_junction"] - b["surface"])
    expected = SITES["face"].sc_thickness_um / math.cos(math.radians(tilt))
    assert sc_vertical == pytest.approx(expected, rel=0.08)


def test_curvature_dome_is_shallower_in_the_centre():
    sec = render_section(SectionParams(curvature=1.0, roughness_um=0.0), seed=0)
    s = sec.boundaries_um["surface"]
    centre, edge = s[600], s[0]
    # depth = s0 + c/2 * x^2 with c = 1/mm and x = 600 µm -> 180 µm deeper at the edge
    # columns 599 and 600 straddle the centre (599.5 µm), 0.5 µm from it
    assert centre == pytest.approx(60.0 + 0.5e-3 * 0.5**2, abs=1e-9)
    assert edge - 60.0 == pytest.approx(0.5e-3 * 599.5**2, rel=1e-9)


def test_protrusions_reach_into_the_dermis():
    base = SectionParams(depth_um=300.0, dej_amplitude_um=0.0)
    flat = render_section(base, seed=4).boundaries_um
    bumpy = render_section(
        SectionParams(depth_um=300.0, dej_amplitude_um=0.0, n_protrusions=3), seed=4
    ).boundaries_um
    extra = bumpy["dej"] - flat["dej"]
    assert extra.min() >= 0
    assert extra.max() >= 15.0 * 0.9  # every protrusion is 15–35 µm deep


def test_disruption_is_recorded_and_removes_the_basal_layer():
    params = SectionParams(depth_um=300.0, pigmentation=1.0, noise=0.0, disruption=(400, 800))
    sec = render_section(params, seed=5)
    assert sec.disruption_um == (400.0, 800.0)
    assert render_section(SectionParams(**SMALL), seed=0).disruption_um is None
    # Mean brightness of the 8 µm above the DEJ, inside vs outside the segment.
    z = np.arange(sec.image.shape[0])[:, None] * sec.spacing_um[0]
    dej = sec.boundaries_um["dej"][None, :]
    band = (z < dej - 1) & (z >= dej - 8)
    x = sec.x_um
    inside = band & ((x > 450) & (x < 750))[None, :]
    outside = band & ((x < 350) | (x > 850))[None, :]
    assert sec.image[inside].mean() < 0.75 * sec.image[outside].mean()
    # Labels still follow the DEJ curve inside the disruption.
    counts = _label_counts(sec)["dej"]
    np.testing.assert_array_equal(counts, np.ceil(sec.boundaries_um["dej"]).astype(int))


def test_layer_brightness_and_attenuation():
    sec = render_section(SectionParams(depth_um=500.0, noise=0.0, pigmentation=0.0), seed=7)
    img, lab = sec.image, sec.labels
    rows = (np.arange(img.shape[0]) * sec.spacing_um[0])[:, None]
    b = sec.boundaries_um
    air = img[rows < b["surface"] - 2].mean()
    sc = img[lab == STRATUM_CORNEUM].mean()
    upper_dermis = img[(rows > b["dej"] + 5) & (rows < b["dej"] + 100)].mean()
    assert sc > img[lab == EPIDERMIS].mean() > air
    assert upper_dermis > 6 * air
    # The entrance line (1 µm below the surface) is the brightest structure.
    s = np.ceil(b["surface"]).astype(int)
    entrance = img[s + 1, np.arange(img.shape[1])]
    assert np.median(entrance) > np.percentile(img, 99)
    # Dermis signal decays with depth: round trip at 3/mm over 200 µm.
    dej = np.nanmax(b["dej"])
    shallow = img[(rows[:, 0] > dej + 10) & (rows[:, 0] < dej + 60)].mean()
    deep = img[(rows[:, 0] > dej + 210) & (rows[:, 0] < dej + 260)].mean()
    expected = math.exp(-2 * 3.0e-3 * 200)
    assert deep / shallow == pytest.approx(expected, rel=0.25)


def test_noise_and_blur_controls():
    quiet = render_section(SectionParams(**SMALL, noise=0.0, stripes=0.0), seed=1)
    air = quiet.image[quiet.labels == AIR]
    assert np.ptp(air) < 1e-6  # no speckle, no stripes, no detector noise, dark above the line
    noisy = render_section(SectionParams(**SMALL, noise=2.0), seed=1)
    sharp = render_section(SectionParams(**SMALL, noise=1.0), seed=1)
    assert noisy.image[noisy.labels == AIR].std() > sharp.image[sharp.labels == AIR].std()
    blurred = render_section(SectionParams(**SMALL, blur_um=6.0), seed=1)

    def roughness(a):
        return np.abs(np.diff(a, axis=1)).mean() / a.mean()

    assert roughness(blurred.image) < 0.5 * roughness(sharp.image)


def test_spacing_sets_shape():
    sec = render_section(SectionParams(**SMALL, spacing_um=(2.0, 0.5)), seed=0)
    assert sec.image.shape == (120, 800)
    assert sec.spacing_um == (2.0, 0.5)


def test_same_seed_same_arrays_and_generator_accepted():
    a = render_section(SectionParams(**SMALL), seed=11)
    b = render_section(SectionParams(**SMALL), seed=11)
    c = render_section(SectionParams(**SMALL), seed=12)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)
    d = render_section(SectionParams(**SMALL), seed=np.random.default_rng(11))
    np.testing.assert_array_equal(a.image, d.image)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"site": "knee"}, "site must be one of face, forearm, back, palm"),
        ({"tilt_deg": 45}, "tilt_deg must be a number in"),
        ({"spacing_um": (1.0, -1.0)}, "spacing"),
        ({"spacing_um": (1.0, 1.0, 1.0)}, "spacing needs 2 values"),
        ({"disruption": (900, 100)}, "disruption must satisfy"),
        ({"disruption": (0, 5000)}, "disruption must satisfy"),
        ({"disruption": "abc"}, r"disruption must be \(x_start_um, x_end_um\)"),
        ({"n_protrusions": 2.5}, "n_protrusions must be an integer"),
        ({"n_protrusions": True}, "n_protrusions must be an integer"),
        ({"pigmentation": 1.5}, "pigmentation"),
        ({"noise": float("nan")}, "noise"),
        ({"sc_thickness_um": 0.0}, "sc_thickness_um"),
        ({"attenuation_per_mm": (1.0, 2.0)}, "attenuation_per_mm needs 3 values"),
        ({"matrix_q": 5}, "matrix_q"),
    ],
)
def test_bad_parameters_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        SectionParams(**kwargs)


def test_bad_call_arguments():
    with pytest.raises(InputError, match="params must be a SectionParams"):
        render_section({"site": "face"})
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        render_section(SectionParams(**SMALL), seed=-1)
    with pytest.raises(InputError, match="seed must be"):
        render_section(SectionParams(**SMALL), seed=1.5)
