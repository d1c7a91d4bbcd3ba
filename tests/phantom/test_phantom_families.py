"""Appearance families: exact ground truth, reproducibility, measurable differences."""

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.io import AIR, DERMIS, EPIDERMIS, STRATUM_CORNEUM, read_image
from skinoct.phantom import (
    FAMILIES,
    Appearance,
    SectionParams,
    render_section,
    sample_appearance,
    write_section_dataset,
)
from skinoct.phantom._datasets import family_section_params, sample_subject

SMALL = {"width_um": 300.0, "depth_um": 220.0}


def _family_section(name: str, seed: int, **overrides):
    """One section of a family as write_section_dataset draws it (smaller field)."""
    rng = np.random.default_rng(seed)
    family = FAMILIES[name]
    params = family_section_params(
        rng, family, subject=sample_subject(rng, site="face"), disruption_probability=0.0,
        width_um=overrides.get("width_um", 400.0), depth_um=overrides.get("depth_um", 300.0),
    )  # fmt: skip
    look = family.sample(rng)
    return params, look, render_section(params, seed=seed, appearance=look)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_renders_with_the_plain_sections_exact_labels(name):
    params, look, sec = _family_section(name, 3)
    plain = render_section(params, seed=3)
    assert look.family == name
    assert sec.image.shape == sec.labels.shape == params.shape
    assert sec.image.dtype == np.float32 and np.isfinite(sec.image).all()
    assert sec.image.min() > 0
    # The look never touches the geometry: same labels and curves as the plain render.
    np.testing.assert_array_equal(sec.labels, plain.labels)
    for key, curve in plain.boundaries_um.items():
        np.testing.assert_array_equal(sec.boundaries_um[key], curve)
    # Labels agree with the curves: rows above the surface are air (analytic count).
    dz = sec.spacing_um[0]
    surface = sec.boundaries_um["surface"]
    ok = np.isfinite(surface)
    rows_above = (sec.labels == AIR).sum(axis=0)
    np.testing.assert_array_equal(rows_above[ok], np.ceil(surface[ok] / dz - 1e-9).astype(int))


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(list(FAMILIES)),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_look_keeps_layer_order_and_positive_finite_images(name, seed):
    rng = np.random.default_rng(seed)
    look = sample_appearance(rng, family=name)
    sec = render_section(SectionParams(**SMALL, tilt_deg=10.0), seed=seed, appearance=look)
    assert np.isfinite(sec.image).all() and sec.image.min() > 0
    assert (np.diff(sec.labels.astype(int), axis=0) >= 0).all()  # air → SC → epidermis → dermis


def test_same_seed_same_bytes_other_seed_other_image():
    look = sample_appearance(np.random.default_rng(5), family="artefact-heavy")
    assert look == sample_appearance(np.random.default_rng(5), family="artefact-heavy")
    a = render_section(SectionParams(**SMALL), seed=9, appearance=look)
    b = render_section(SectionParams(**SMALL), seed=9, appearance=look)
    c = render_section(SectionParams(**SMALL), seed=10, appearance=look)
    assert a.image.tobytes() == b.image.tobytes()
    assert not np.array_equal(a.image, c.image)


def _layer_means(sec):
    return {k: float(sec.image[sec.labels == k].mean()) for k in (STRATUM_CORNEUM, EPIDERMIS)}


def test_families_differ_in_sc_contrast_and_texture():
    """Dark-SC family: SC darker than the epidermis in every section; the standard
    family: brighter. The smooth family's dermis is smoother laterally (median relative
    step between neighbouring pixels) than the standard family's."""
    ratios, steps = {}, {}
    for name in FAMILIES:
        r, g = [], []
        for seed in range(6):
            look = sample_appearance(np.random.default_rng(seed), family=name)
            sec = render_section(SectionParams(**SMALL, site="forearm"), seed=seed,
                                 appearance=look)  # fmt: skip
            means = _layer_means(sec)
            r.append(means[STRATUM_CORNEUM] / means[EPIDERMIS])
            a = sec.image
            both = (sec.labels[:, 1:] == DERMIS) & (sec.labels[:, :-1] == DERMIS)
            g.append(np.median((np.abs(np.diff(a, axis=1)) / (a[:, 1:] + a[:, :-1]))[both]))
        ratios[name], steps[name] = np.array(r), float(np.median(g))
    assert np.all(ratios["standard"] > 1.5)
    assert np.all(ratios["dark-sc-low-contrast"] < 1.0)
    assert steps["smooth-blurred-coarse"] < 0.6 * steps["standard"]
    assert steps["artefact-heavy"] > steps["standard"]


def test_artefact_family_draws_artefacts_on_air_only():
    look = Appearance(n_hairs=3, n_bubbles=3, gel_um=40.0, window_level=2.0, n_lines=0,
                      speckle_looks=1000.0, read_noise=0.0, stripes=0.0)  # fmt: skip
    params = SectionParams(**SMALL, surface_depth_um=120.0)
    plain = render_section(params, seed=4, appearance=Appearance(speckle_looks=1000.0,
                                                                 read_noise=0.0, stripes=0.0))
    sec = render_section(params, seed=4, appearance=look)
    np.testing.assert_array_equal(sec.labels, plain.labels)
    air = sec.labels == AIR
    assert sec.image[air].max() > 3 * plain.image[air].max()  # hairs, bubbles, window
    # Shadows only darken the tissue (up to the 3 % speckle of 1000 looks, whose
    # realisation differs once the artefacts have drawn their positions).
    tissue = ~air
    ratio = sec.image[tissue] / plain.image[tissue]
    assert np.mean(ratio <= 1.15) > 0.99 and ratio.mean() < 0.97


def test_psf_blurs_more_laterally_when_anisotropic():
    base = {"speckle_looks": 1000.0, "read_noise": 0.0, "stripes": 0.0, "specular_level": 0.0}
    sharp = render_section(SectionParams(**SMALL), seed=2, appearance=Appearance(**base))
    wide = render_section(SectionParams(**SMALL), seed=2,
                          appearance=Appearance(**base, psf_fwhm_um=(1.0, 12.0)))  # fmt: skip

    def grad(img, axis):
        return float(np.abs(np.diff(np.log(img), axis=axis)).mean())

    assert grad(wide.image, 1) < 0.5 * grad(sharp.image, 1)  # lateral detail gone
    assert grad(wide.image, 0) > 0.5 * grad(sharp.image, 0)  # axial detail mostly kept


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"textures": ("tissue", "wood", "smooth")}, "textures"),
        ({"sc_level": -1.0}, "sc_level"),
        ({"psf_fwhm_um": (1.0,)}, "psf_fwhm_um"),
        ({"n_hairs": 2.5}, "n_hairs"),
        ({"gamma": 10.0}, "gamma"),
    ],
)
def test_appearance_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        Appearance(**kwargs)


def test_unknown_family_and_wrong_appearance_type_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="family must be one of"):
        sample_appearance(np.random.default_rng(0), family="glossy")
    with pytest.raises(InputError, match="family must be one of"):
        write_section_dataset(tmp_path, 1, family="glossy")
    with pytest.raises(InputError, match="appearance must be an Appearance"):
        render_section(SectionParams(**SMALL), appearance={"gamma": 1.0})


def test_mixed_dataset_is_byte_reproducible_and_records_the_family(tmp_path):
    kwargs = {"seed": 3, "family": "mixed", "sections_per_subject": 2, "width_um": 240.0,
              "depth_um": 200.0}  # fmt: skip
    write_section_dataset(tmp_path / "a", 6, **kwargs)
    write_section_dataset(tmp_path / "b", 6, **kwargs)
    for name in ("index.csv", "images/sec00001.ome.tif", "masks/sec00006.ome.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with open(tmp_path / "a" / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["family"] for r in rows} <= set(FAMILIES)
    assert all(r["look_textures"] for r in rows)
    # The pixel size comes from the family and is written into the image metadata.
    for r in rows:
        image = read_image(tmp_path / "a" / "images" / f"{r['id']}.ome.tif", axes="zx")
        lo, hi = FAMILIES[r["family"]].spacing_um[1]
        assert lo <= image.spacing_um[1] <= hi


def test_cli_sections_family(run_cli, tmp_path):
    args = ["--width", "200", "--depth", "160", "--family", "smooth-blurred-coarse"]
    code, out, _ = run_cli("phantom", "sections", "--n", "2", "--out", tmp_path, *args)
    assert code == 0, out
    with open(tmp_path / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["family"] for r in rows] == ["smooth-blurred-coarse"] * 2
    code, out, err = run_cli("phantom", "sections", "--n", "1", "--out", tmp_path / "x",
                             "--family", "nope")  # fmt: skip
    assert code == 2 and "family must be one of" in (out + err)
