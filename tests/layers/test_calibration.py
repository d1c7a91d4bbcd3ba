"""DEJ-uncertainty calibration: the quantile rule, storage in the manifest, use by default."""

import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skinoct.errors import InputError, ModelError
from skinoct.layers import (
    UNCERTAINTY_KEY,
    DejFlag,
    calibrate_uncertainty,
    calibration_threshold,
    dej_entropy_threshold,
    dej_flag_settings,
    load_layers_model,
    section_flag_scores,
    segmentation_flag_score,
    write_uncertainty_calibration,
)
from skinoct.morphometry import (
    default_entropy_band_um,
    default_entropy_threshold,
    default_min_segment_um,
    dej_flag_score,
    excess_dej_entropy,
    measure_section,
    uncertain_segments,
)
from skinoct.phantom import SectionParams, render_section


@pytest.mark.parametrize("seed", range(5))
def test_flag_score_is_the_highest_threshold_that_flags(seed):
    rng = np.random.default_rng(seed)
    profile = rng.uniform(0, 1, 60)
    profile[rng.integers(0, 60, 5)] = np.nan
    score = dej_flag_score(profile, 2.0, min_length_um=10.0)
    assert uncertain_segments(profile, 2.0, threshold=score - 1e-9, min_length_um=10.0)
    assert not uncertain_segments(profile, 2.0, threshold=score, min_length_um=10.0)


def test_excess_entropy_removes_the_median_and_the_slope_effect():
    dej = np.r_[np.full(20, 50.0), 50.0 + 3.0 * np.arange(1, 11), np.full(20, 80.0)]
    # vertical-band entropy of a boundary of constant normal width: ∝ sqrt(1 + slope²)
    slope = np.abs(np.gradient(dej))
    profile = 0.1 * np.sqrt(1 + slope**2)
    excess = excess_dej_entropy(profile, dej, (1.0,))
    # the ramp's inner columns (slope 3, central differences) are back at the baseline
    np.testing.assert_allclose(excess[22:29], 0.0, atol=1e-12)
    assert np.nanmedian(excess) == pytest.approx(0.0)


def test_conformal_threshold_ranks():
    scores = np.arange(1, 20) / 100  # 0.01 … 0.19, n = 19
    assert calibration_threshold(scores, 0.9) == pytest.approx(0.18)  # ceil(20 · 0.9) = 18th
    assert calibration_threshold(scores[::-1], 0.5) == pytest.approx(0.10)  # 10th; any order
    assert calibration_threshold([0.2, np.nan, 0.1], 0.9) == 0.2  # too few: the largest
    assert calibration_threshold([-0.3, 2.0], 0.3) == 0.0  # 1st of 2, clipped to [0, 1]
    assert calibration_threshold([-0.3, 2.0], 0.4) == 1.0  # ceil(3 · 0.4) = 2nd, clipped
    with pytest.raises(InputError, match="finite"):
        calibration_threshold([np.nan], 0.9)
    with pytest.raises(InputError, match="quantile"):
        calibration_threshold([0.1], 1.0)


@given(
    scores=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    quantile=st.floats(0.05, 0.95),
)
def test_conformal_threshold_flags_at_most_the_stated_share(scores, quantile):
    """At most ``1 − quantile`` of the calibration scores lie above the threshold."""
    t = calibration_threshold(scores, quantile)
    assert t in scores
    assert np.mean(np.array(scores) > t) <= 1 - quantile + 1e-12


def test_segmentation_flag_score_of_a_known_stretch():
    """Entropy 0.9 around a flat DEJ over 30 µm, 0.05 elsewhere: excess 0.85 there."""
    labels = np.zeros((80, 120), np.uint8)
    labels[10:15], labels[15:40], labels[40:] = 1, 2, 3  # DEJ at 40 µm, 1 µm pixels
    entropy = np.full(labels.shape, 0.05, np.float32)
    entropy[30:51, 10:40] = 0.9  # ±10 µm around the DEJ, x = 10 … 39 µm
    metrics, score = segmentation_flag_score(labels, entropy, (1.0, 1.0), band_um=5.0,
                                             min_segment_um=20.0)  # fmt: skip
    assert score == pytest.approx(0.85, abs=1e-6)
    assert metrics.to_dict()["dej_entropy_mean"] == pytest.approx((30 * 0.9 + 90 * 0.05) / 120)
    # a minimum longer than the stretch: no 40 µm window stays above the baseline
    _, longer = segmentation_flag_score(labels, entropy, (1.0, 1.0), band_um=5.0,
                                        min_segment_um=40.0)  # fmt: skip
    assert longer == pytest.approx(0.0, abs=1e-6)
    assert segmentation_flag_score(np.zeros_like(labels), entropy, (1.0, 1.0), band_um=5.0,
                                   min_segment_um=20.0)[0] is None  # no skin  # fmt: skip


def _sections(n, seed0=100):
    params = SectionParams(width_um=240, depth_um=200)
    rendered = [render_section(params, seed=seed0 + i) for i in range(n)]
    return [(s.image, s.spacing_um) for s in rendered]


@pytest.fixture(scope="module")
def bundled():
    return load_layers_model()


def test_calibration_threshold_is_the_stated_quantile(bundled):
    sections = _sections(6)
    scores = np.array(section_flag_scores(bundled, sections))
    cal = calibrate_uncertainty(bundled, sections, quantile=0.8, computed_on="6 phantoms")
    valid = scores[np.isfinite(scores)]
    assert cal["n_sections"] == valid.size
    # split conformal: the ceil((n + 1) q)-th smallest score (the largest if beyond n)
    rank = min(valid.size, math.ceil((valid.size + 1) * 0.8))
    expected = np.clip(np.sort(valid)[rank - 1], 0, 1)
    assert cal["dej_entropy_threshold"] == pytest.approx(expected, abs=1e-6)
    assert cal["quantile"] == 0.8 and cal["computed_on"] == "6 phantoms"
    assert cal["weights_sha256"] == bundled.weights_sha256
    # the model's own band and minimum segment
    own = dej_flag_settings(bundled)
    assert (cal["entropy_band_um"], cal["min_segment_um"]) == (own.band_um, own.min_segment_um)
    # by construction at most 1 - quantile of the calibration sections are flagged
    assert np.mean(valid > cal["dej_entropy_threshold"]) <= 0.2 + 1e-9


def test_calibration_is_stored_loaded_and_used(tiny_model_dir, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    model = load_layers_model(model_dir)
    assert UNCERTAINTY_KEY not in model.manifest
    assert dej_entropy_threshold(model) == default_entropy_threshold()
    cal = {"dej_entropy_threshold": 0.123, "quantile": 0.9, "weights_sha256": model.weights_sha256}
    write_uncertainty_calibration(model_dir, cal)
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest[UNCERTAINTY_KEY]["dej_entropy_threshold"] == 0.123
    reloaded = load_layers_model(model_dir)  # the weights' SHA-256 still verifies
    assert dej_entropy_threshold(reloaded) == 0.123
    assert reloaded.weights_sha256 == model.weights_sha256


def test_band_and_length_are_stored_with_the_threshold_and_used(tiny_model_dir, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    model = load_layers_model(model_dir)
    # no calibration: the bundled model's settings; no model: the same
    bundled = (default_entropy_threshold(), default_entropy_band_um(), default_min_segment_um())
    assert dej_flag_settings(model) == bundled
    assert dej_flag_settings(None) == dej_flag_settings(model)
    sha = model.weights_sha256
    write_uncertainty_calibration(model_dir, {"dej_entropy_threshold": 0.2, "weights_sha256": sha})
    # a calibration stored before the band and length were: the values used then
    assert dej_flag_settings(load_layers_model(model_dir)) == (0.2, 5.0, 20.0)
    cal = {"dej_entropy_threshold": 0.2, "entropy_band_um": 12.0, "min_segment_um": 50.0}
    write_uncertainty_calibration(model_dir, {**cal, "weights_sha256": sha})
    model = load_layers_model(model_dir)
    assert dej_flag_settings(model) == DejFlag(threshold=0.2, band_um=12.0, min_segment_um=50.0)
    assert dej_flag_settings(model, threshold=0.3, band_um=4.0) == (0.3, 4.0, 50.0)
    # another band or length with the calibrated threshold is no longer calibrated: warned
    with pytest.warns(UserWarning, match=r"±12 µm band and a 50 µm minimum.*another band"):
        assert dej_flag_settings(model, band_um=4.0) == (0.2, 4.0, 50.0)
    with pytest.warns(UserWarning, match=r"another minimum segment are not"):
        dej_flag_settings(model, min_segment_um=20.0)
    model.manifest[UNCERTAINTY_KEY]["entropy_band_um"] = -1.0
    with pytest.raises(ModelError, match="entropy_band_um"):
        dej_flag_settings(model)
    model.manifest[UNCERTAINTY_KEY].update(entropy_band_um=5.0, min_segment_um="long")
    with pytest.raises(ModelError, match="min_segment_um"):
        dej_flag_settings(model)
    # explicit values need nothing from a broken manifest
    assert dej_flag_settings(model, threshold=0.1, band_um=3.0, min_segment_um=9.0) == (
        0.1, 3.0, 9.0,
    )  # fmt: skip
    model.manifest[UNCERTAINTY_KEY].update(dej_entropy_threshold=None, min_segment_um=20.0)
    with pytest.raises(ModelError, match="threshold"):  # not the bundled one silently
        dej_flag_settings(model)
    with pytest.raises(ModelError, match="entropy_band_um"):
        write_uncertainty_calibration(model_dir, {**cal, "entropy_band_um": -2.0,
                                                  "weights_sha256": sha})  # fmt: skip


def test_segment_uses_the_models_calibrated_threshold(run_cli, tiny_model_dir, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    model = load_layers_model(model_dir)
    cal = {"dej_entropy_threshold": 0.0, "entropy_band_um": 12.0, "min_segment_um": 30.0}
    write_uncertainty_calibration(model_dir, {**cal, "weights_sha256": model.weights_sha256})
    image, spacing = _sections(1)[0]
    from skinoct.io import write_image

    src = write_image(tmp_path / "s.ome.tif", image, spacing_um=spacing, axes="zx")
    out = tmp_path / "out"
    code, _, err = run_cli("layers", "segment", src, "--out", out, "--model", model_dir)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "s.metrics.json").read_text())
    assert record["uncertainty"] == {**cal, "calibrated": True}
    if record["metrics"] is not None:
        mask = load_mask(tmp_path / "out" / "s_mask.tif")
        ent = load_mask(tmp_path / "out" / "s_entropy.tif", entropy=True)
        expected = measure_section(
            mask, spacing, entropy=ent, entropy_threshold=0.0, entropy_band_um=12.0,
            min_segment_um=30.0,
        ).to_dict()  # fmt: skip
        for key in ("dej_uncertain_segments", "dej_entropy_mean"):
            assert record["metrics"][key] == expected[key]


def load_mask(path, *, entropy=False):
    from skinoct.io import read_image, read_mask

    return read_image(path).data if entropy else read_mask(path).data


def test_bad_calibrations(tiny_model, tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="quantile"):
        calibrate_uncertainty(tiny_model, _sections(1), quantile=1.0)
    with pytest.raises(InputError, match="no calibration section has a DEJ"):
        calibrate_uncertainty(tiny_model, [np.zeros((32, 32))], spacing_um=(1.0, 1.0))
    with pytest.raises(InputError, match="at least one section"):
        calibrate_uncertainty(tiny_model, [])
    with pytest.raises(InputError, match="spacing_um"):
        calibrate_uncertainty(tiny_model, [np.zeros((32, 32))])
    with pytest.raises(InputError, match="band_um"):
        calibrate_uncertainty(tiny_model, _sections(1), band_um=-1.0)
    with pytest.raises(InputError, match="min_segment_um"):
        calibrate_uncertainty(tiny_model, _sections(1), min_segment_um=float("nan"))
    with pytest.raises(InputError, match="band_um"):  # not a NaN score per section
        section_flag_scores(tiny_model, _sections(1), band_um=-5.0)
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    with pytest.raises(ModelError, match="other weights"):
        write_uncertainty_calibration(
            model_dir, {"dej_entropy_threshold": 0.2, "weights_sha256": "0" * 64}
        )
    with pytest.raises(ModelError, match="dej_entropy_threshold"):
        write_uncertainty_calibration(model_dir, {"quantile": 0.9})


def test_volume_flag_uses_the_excess_entropy_and_the_default_settings():
    from skinoct.morphometry import uncertain_dej_area

    entropy_map = np.full((40, 60), 0.3)  # a high but uniform baseline: nothing stands out
    dej = np.full((40, 60), 100.0)
    assert not uncertain_dej_area(entropy_map, dej, (2.0, 2.0), threshold=0.1).any()
    entropy_map[10:25, 20:40] += 0.25  # a 30 x 40 µm stretch 0.25 above the baseline
    flagged = uncertain_dej_area(entropy_map, dej, (2.0, 2.0), threshold=0.1, min_length_um=20)
    assert flagged[10:25, 20:40].all() and flagged.sum() == 15 * 20
    # 1200 µm² is less than a 40 µm square: dropped
    dropped = uncertain_dej_area(entropy_map, dej, (2.0, 2.0), threshold=0.1, min_length_um=40)
    assert not dropped.any()
    assert np.array_equal(
        uncertain_dej_area(entropy_map, dej, (2.0, 2.0)),
        uncertain_dej_area(entropy_map, dej, (2.0, 2.0), threshold=default_entropy_threshold(),
                           min_length_um=default_min_segment_um()),
    )  # fmt: skip


def test_stored_threshold_rounds_up_so_the_quantile_score_is_not_flagged(tiny_model, monkeypatch):
    from skinoct.layers import _calibration

    # Scores with more than 6 decimals; the conformal 0.7 quantile of 6 (the 5th
    # smallest) is exactly 0.06183121, which rounded to the nearest 1e-6 (0.061831)
    # would flag that section as well.
    scores = [0.06183121, 0.09630901, 0.00839511, 0.04815052, 0.04201251, 0.02055663]
    monkeypatch.setattr(_calibration, "section_flag_scores", lambda m, s, **kw: scores)
    cal = calibrate_uncertainty(tiny_model, [None] * 6, quantile=0.7)
    assert 0.06183121 <= cal["dej_entropy_threshold"] <= 0.06183121 + 1e-6
    assert np.mean(np.array(scores) > cal["dej_entropy_threshold"]) <= 0.3
    monkeypatch.setattr(_calibration, "section_flag_scores", lambda m, s, **kw: [1.0, 1.0])
    assert calibrate_uncertainty(tiny_model, [None] * 2)["dej_entropy_threshold"] == 1.0
