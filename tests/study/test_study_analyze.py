"""analyze_volume: surfaces, morphometry, DEJ-relative profile, outputs, determinism.

The layer model and the grading model are replaced by exact stand-ins here (see
``_study_fakes``): what is tested is the pipeline around them, against analytic
answers. ``test_study_real_models.py`` runs the real bundled models.
"""

from __future__ import annotations

import json
import math
import types

import _study_fakes as fakes
import numpy as np
import pandas as pd
import pytest

import skinoct.study.analyze as analyze_mod
from skinoct.errors import InputError
from skinoct.io import write_image
from skinoct.morphometry import (
    crop_depth,
    extract_boundaries,
    fill_nearest,
    interpolate_rows,
    labels_from_surfaces,
    remove_outliers,
    rms_amplitude,
    section_rows,
)

# ------------------------------------------------------------------ surfaces (pure)


def test_section_rows_cover_both_ends():
    assert section_rows(10, 1).tolist() == list(range(10))
    assert section_rows(10, 3).tolist() == [0, 3, 6, 9]
    assert section_rows(11, 5).tolist() == [0, 5, 10]
    assert section_rows(1, 4).tolist() == [0]
    with pytest.raises(ValueError, match="step"):
        section_rows(10, 0)


def test_interpolate_rows_is_exact_for_linear_surfaces_and_keeps_gaps():
    ny, nx = 13, 5
    truth = 20 + 0.5 * np.arange(ny)[:, None] + np.arange(nx)[None, :]
    rows = section_rows(ny, 4)
    out = interpolate_rows(truth[rows], rows, ny)
    np.testing.assert_allclose(out, truth, atol=1e-12)
    holed = truth[rows].copy()
    holed[1, 2] = np.nan  # row 4: rows 1..7 in column 2 depend on it
    out = interpolate_rows(holed, rows, ny)
    assert np.isnan(out[1:8, 2]).all() and np.isfinite(out[[0, 8, 12], 2]).all()


def test_remove_outliers_replaces_spikes_only():
    y, x = np.mgrid[0:60, 0:80].astype(float)
    smooth = 50 + 5 * np.sin(2 * np.pi * x / 90)
    spiky = smooth.copy()
    spiky[30, 40] += 20
    spiky[10, 10] -= 15
    spiky[5, 70] = np.nan
    cleaned, outliers = remove_outliers(spiky, (1.0, 1.0), window_um=11, threshold_um=6)
    assert outliers.sum() == 2 and outliers[30, 40] and outliers[10, 10]
    np.testing.assert_allclose(cleaned[30, 40], smooth[30, 40], atol=0.3)
    keep = ~outliers & np.isfinite(spiky)
    np.testing.assert_array_equal(cleaned[keep], spiky[keep])
    assert np.isnan(cleaned[5, 70])


def test_fill_nearest():
    a = np.array([[1.0, np.nan, np.nan, 4.0]])
    np.testing.assert_array_equal(fill_nearest(a), [[1.0, 1.0, 4.0, 4.0]])
    assert np.isnan(fill_nearest(np.full((2, 2), np.nan))).all()


def test_labels_from_surfaces_round_trip_through_morphometry():
    """Boundaries rebuilt into labels come back within half a pixel."""
    ny, nx, dz = 6, 40, 0.8
    x = np.arange(nx)
    surface = np.full((ny, nx), 8.3)
    sc = surface + 10.0
    dej = 45 + 4 * np.sin(2 * np.pi * x / 20)[None].repeat(ny, 0)
    sc[:, :5] = np.nan  # no stratum corneum there: epidermis starts at the surface
    n_z = crop_depth(dej, dz, 200)
    assert n_z == int(np.ceil((dej.max() + 10) / dz)) + 1
    labels = labels_from_surfaces(surface, sc, dej, dz, n_z)
    assert labels.shape == (n_z, ny, nx) and labels.dtype == np.uint8
    assert (labels[:, :, :5] != 1).all()
    b = extract_boundaries(labels, (dz, 1.0, 1.0), smoothing_um=0)
    np.testing.assert_allclose(b.surface, surface, atol=dz / 2 + 1e-9)
    np.testing.assert_allclose(b.dej, dej, atol=dz / 2 + 1e-9)
    np.testing.assert_allclose(b.sc_junction[:, 5:], sc[:, 5:], atol=dz / 2 + 1e-9)
    assert np.isnan(b.sc_junction[:, :5]).all()


# ------------------------------------------------------------------ analyze_volume (stand-ins)


@pytest.fixture
def stand_ins(monkeypatch):
    """Exact segmenter and a tile-uniformity grader instead of the trained networks."""
    import skinoct.layers
    import skinoct.matrix

    model = types.SimpleNamespace(
        classes=(1, 2, 3, 4), manifest=fakes.FAKE_MODEL_MANIFEST, path=None
    )
    monkeypatch.setattr(skinoct.layers, "segment_sections", fakes.fake_segment_sections)
    monkeypatch.setattr(skinoct.matrix, "predict_tiles", fakes.uniformity_grader)
    monkeypatch.setattr(analyze_mod, "load_models", lambda a, b: (model, model))
    return model


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vol") / "v.ome.tif"
    write_image(path, fakes.layered_volume(), spacing_um=(1, 1, 1), axes="zyx")
    return path


# Tiles of 40 µm: the test volume is 48 × 180 µm en face (real ones use 400 µm).
SMALL = {"tile_size_um": 40.0, "batch_size": 16}


@pytest.mark.parametrize("step", [1, 5])
def test_analyze_recovers_analytic_geometry_and_profile(stand_ins, volume_file, tmp_path, step):
    r = analyze_mod.analyze_volume(volume_file, out_dir=tmp_path, section_step=step, **SMALL)
    m = r["morphometry"]
    assert m["stratum_corneum_thickness_um"]["mean"] == pytest.approx(12.0, abs=1e-6)
    # surface 10.3 µm, DEJ 50 + 5 sin(2πx/90) over two full periods: mean 39.7 µm,
    # boundaries read back within ±dz/2 (skinoct's pixel convention)
    assert m["epidermis_thickness_um"]["mean"] == pytest.approx(39.7, abs=0.5)
    # RMS about the best-fit plane, as morphometry computes it on the true DEJ, less
    # 1 % from its σ = 2 µm smoothing; ±0.15 µm for the pixel grid
    truth = rms_amplitude(np.broadcast_to(fakes.true_dej(180), (48, 180)), (1.0, 1.0))
    assert m["dej_rms_amplitude_um"] == pytest.approx(0.99 * truth, abs=0.15)
    ak = fakes.DEJ_AMPLITUDE_UM * 2 * np.pi / fakes.DEJ_PERIOD_UM
    t = np.linspace(0, 2 * np.pi, 100001)
    assert m["dej_surface_area_ratio"] == pytest.approx(
        np.mean(np.sqrt(1 + (ak * np.cos(t)) ** 2)), abs=0.01
    )
    # entropy 0.9 along the DEJ in the left third of the field
    assert r["dej"]["uncertain_area_fraction"] == pytest.approx(1 / 3, abs=0.02)
    assert any(f.startswith("uncertain DEJ: 33%") for f in r["flags"])
    # the flag's settings are the layer model's calibration (fakes.FAKE_MODEL_MANIFEST):
    # its ±5 µm band lies inside the 0.9 rows (±6 µm), so the left third averages 0.9
    # (a ±15 µm band would average 0.9 · 13/31 there: a mean of 0.13)
    assert r["dej"]["entropy_mean"] == pytest.approx(0.3, abs=0.02)
    assert (r["dej"]["uncertainty_threshold"], r["dej"]["uncertainty_band_um"],
            r["dej"]["uncertainty_min_segment_um"]) == (0.15, 5.0, 20.0)  # fmt: skip
    assert r["dej"]["sections_segmented"] == len(section_rows(48, step))
    # every tile sampled parallel to the local DEJ is uniform -> grade 4 at every depth;
    # the tiles of 0-2 µm would straddle the DEJ (their z-1 slice lies < 2 µm below it)
    p = r["profile"]
    assert p["depth_um"] == [float(d) for d in range(70)]
    assert p["n_tiles"] == [0] * 3 + [3] * 67
    assert all(math.isnan(v) for v in p["score"][:3]) and p["score"][3:] == [4.0] * 67
    assert r["score"] == 4.0 and r["profile_start_um"] == 3.0
    assert not any("without tiles" in f for f in r["flags"])
    assert r["dej"]["source"] == "segmentation"
    assert r["metrics"]["epidermis_thickness_um_mean"] == pytest.approx(
        m["epidermis_thickness_um"]["mean"]
    )


def test_depth_crop_after_a_pilot_pass(stand_ins, volume_file, tmp_path):
    """Most sections are segmented only down to the pilot's deepest DEJ + margin."""
    full = analyze_mod.analyze_volume(volume_file, crop_margin_um=None, **SMALL)
    crop = analyze_mod.analyze_volume(volume_file, crop_margin_um=20.0, **SMALL)
    assert full["dej"]["segmented_depth_um"] == 140.0  # the whole volume
    # deepest DEJ 54.5 µm (read back at the pixel edge) + 20 µm -> 76 rows
    assert crop["dej"]["segmented_depth_um"] == 76.0
    assert crop["metrics"] == full["metrics"]
    assert json.dumps(crop["profile"]) == json.dumps(full["profile"])  # NaN-safe


def test_a_wrong_dej_gives_non_uniform_tiles(stand_ins, volume_file, tmp_path):
    """A flat DEJ at 50 µm (given, as in seed 002's manual selection) cuts across the
    ±5 µm undulation: tiles are no longer uniform, the stand-in grades them 1."""
    r = analyze_mod.analyze_volume(volume_file, out_dir=tmp_path, dej=50.0, **SMALL)
    assert r["dej"]["source"] == "given"
    assert r["profile"]["score"][5:] == [1.0] * 65  # (right at the DEJ the plane is flat)
    assert r["score"] < 1.1
    np.save(tmp_path / "dej.npy", np.broadcast_to(fakes.true_dej(180), (48, 180)))
    r = analyze_mod.analyze_volume(volume_file, dej=tmp_path / "dej.npy", **SMALL)
    assert r["score"] == pytest.approx(4.0)


def test_input_sha256_is_that_of_the_file_or_of_the_array_bytes(stand_ins, volume_file):
    """The hash computed in the background is the file's, or the C-order bytes' of an
    in-memory volume (also a non-contiguous one, hashed without ``tobytes``)."""
    import hashlib

    from skinoct.io import Image

    r = analyze_mod.analyze_volume(volume_file, section_step=3, **SMALL)
    assert r["input"]["sha256"] == hashlib.sha256(volume_file.read_bytes()).hexdigest()
    data = np.asfortranarray(fakes.layered_volume())  # not C-contiguous
    image = Image(data=data, spacing_um=(1.0, 1.0, 1.0), axes="zyx")
    r = analyze_mod.analyze_volume(image, section_step=3, **SMALL)
    want = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    assert r["input"]["sha256"] == want


def test_outputs_and_determinism(stand_ins, volume_file, tmp_path):
    a = analyze_mod.analyze_volume(volume_file, out_dir=tmp_path / "a", section_step=3, **SMALL)
    analyze_mod.analyze_volume(volume_file, out_dir=tmp_path / "b", section_step=3, **SMALL)
    assert (tmp_path / "a" / "analysis.json").read_bytes() == (
        tmp_path / "b" / "analysis.json"
    ).read_bytes()
    out = tmp_path / "a"
    saved = json.loads((out / "analysis.json").read_text())
    assert saved["input"]["sha256"] and saved["input"]["shape"] == [140, 48, 180]
    assert saved["versions"]["layers_model"]["weights_sha256"] == "0" * 64
    assert saved["versions"]["engines"]["layers"] in ("torch", "onnx", "openvino")
    assert "timings_s" not in saved  # run metadata stays out of the deterministic file
    prof = pd.read_csv(out / "profile.csv")
    assert len(prof) == 70 and {"depth_um", "score", "sd", "n_tiles", "p_grade_4"} <= set(
        prof.columns
    )
    dej = np.load(out / "maps" / "dej_um.npy")
    assert dej.shape == (48, 180)
    np.testing.assert_allclose(dej.mean(axis=0), np.round(fakes.true_dej(180)), atol=1.0)
    for rel in a["images"].values():
        assert (out / rel).is_file()
    # the order of the report's gallery: maps, uncertainty, then overlays, then profile
    assert list(a["images"]) == [
        "thickness and DEJ maps",
        "DEJ uncertainty map",
        "section overlay (boundaries / entropy)",
        "profile",
    ]
    assert len(list((out / "overlays").glob("section_y*.png"))) == 3
    assert set(a["timings_s"]) == {
        "read",
        "segmentation",
        "morphometry",
        "tiles",
        "grading",
        "outputs",
    }


def test_bad_inputs(stand_ins, volume_file, tmp_path):
    with pytest.raises(InputError, match="shape"):
        analyze_mod.analyze_volume(volume_file, dej=np.zeros((3, 3)), **SMALL)
    with pytest.raises(InputError, match="DEJ file not found"):
        analyze_mod.analyze_volume(volume_file, dej=tmp_path / "none.npy", **SMALL)
    with pytest.raises(InputError, match="section_step"):
        analyze_mod.analyze_volume(volume_file, section_step=0)
    with pytest.raises(InputError, match="min_segment_um must be"):
        analyze_mod.analyze_volume(volume_file, min_segment_um=-1.0)
    with pytest.raises(InputError, match="entropy_band_um must be"):
        analyze_mod.analyze_volume(volume_file, entropy_band_um=float("inf"))
    with pytest.raises(TypeError):
        analyze_mod.analyze_volume(volume_file, no_such_option=1)
    with pytest.raises(InputError, match="smaller than a 400 µm tile"):
        analyze_mod.analyze_volume(volume_file)  # 48 µm field


def test_cli_analyze(stand_ins, volume_file, tmp_path, run_cli):
    code, out, err = run_cli(
        "analyze", volume_file, "--out", tmp_path / "o", "--section-step", "4", "--tile-size", "40"
    )
    assert code == 0, err
    assert "mean dermal quality score 4.00 over 67 depths (from 3 µm below the DEJ)" in out
    assert "flag: uncertain DEJ" in err
    assert (
        json.loads((tmp_path / "o" / "analysis.json").read_text())["options"]["section_step"] == 4
    )
    code, out, err = run_cli(
        "analyze", volume_file, "--out", tmp_path / "o", "--dej", "nowhere.npy", "--tile-size", "40"
    )
    assert code == 2 and "DEJ file not found" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(
        "analyze",
        volume_file,
        "--out",
        tmp_path / "o",
        "--json",
        "--tile-size",
        "40",
        "--dej",
        "52.5",
    )
    assert code == 0 and json.loads(out)["dej"]["source"] == "given"


@pytest.mark.parametrize(("margin", "start"), [(-1.0, 0.0), (0.0, 1.0), (2.0, 3.0), (4.5, 6.0)])
def test_profile_starts_where_tiles_no_longer_straddle_the_dej(
    stand_ins, volume_file, margin, start
):
    """A depth is graded when its shallowest slice (depth − 1 µm) is ≥ margin below the DEJ."""
    r = analyze_mod.analyze_volume(volume_file, dej_margin_um=margin, **SMALL)
    p = r["profile"]
    first = int(start)
    assert r["profile_start_um"] == start
    assert p["n_tiles"] == [0] * first + [3] * (70 - first)
    assert p["score"][first:] == [4.0] * (70 - first)
    assert r["options"]["dej_margin_um"] == margin


def test_analysis_accepts_engine_auto_and_rejects_unknown_engines():
    from skinoct.study.analyze import AnalysisOptions

    assert AnalysisOptions(engine="auto").engine == "auto"
    with pytest.raises(InputError, match="engine must be"):
        AnalysisOptions(engine="tensorrt")
    assert AnalysisOptions().engine == "auto"  # the default (issue 14)


def test_analysis_json_names_the_engines_auto_chose(stand_ins, volume_file, tmp_path):
    from skinoct.models import resolve_engine

    r = analyze_mod.analyze_volume(volume_file, out_dir=tmp_path, **SMALL)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["options"]["engine"] == "auto"
    want = {t: resolve_engine("auto", task=t, device="cpu") for t in ("layers", "matrix")}
    assert saved["versions"]["engines"] == r["versions"]["engines"] == want
    assert "auto" not in want.values()


def test_auto_falls_back_cleanly_without_openvino(stand_ins, volume_file, monkeypatch):
    import sys

    import skinoct.models._runtime as runtime
    from skinoct.study import model_fingerprint

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # would favour OpenVINO
    assert not runtime.openvino_available()
    r = analyze_mod.analyze_volume(volume_file, **SMALL)
    want = "onnx" if runtime.onnxruntime_available() else "torch"
    assert r["versions"]["engines"] == {"layers": want, "matrix": want}
    assert r["score"] == 4.0  # the analysis itself is unaffected
    # the study's input hash sees the engine auto resolves to (no silent mix on resume)
    assert model_fingerprint()["engines"] == {"layers": want, "matrix": want}
    assert model_fingerprint(engine="torch")["engines"] == {"layers": "torch", "matrix": "torch"}
    assert "engines" not in model_fingerprint(engine=None)


def test_a_failing_morphometry_leaves_no_overlays_and_no_analysis_json(
    stand_ins, volume_file, tmp_path, monkeypatch
):
    """The overlays are written beside the morphometry; when it fails they are removed."""
    import threading

    started = threading.Event()
    real = analyze_mod._morphometry

    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise InputError("no DEJ found in the volume")

    from skinoct.study import _outputs

    write = _outputs.write_overlays

    def overlays(*args):
        started.set()
        return write(*args)

    monkeypatch.setattr(analyze_mod, "_morphometry", failing)
    monkeypatch.setattr(_outputs, "write_overlays", overlays)
    out = tmp_path / "o"
    with pytest.raises(InputError, match="no DEJ"):
        analyze_mod.analyze_volume(volume_file, out_dir=out, section_step=3, **SMALL)
    assert started.is_set()  # the overlays were being written when the stage failed
    assert not (out / "overlays").exists()
    assert not (out / "analysis.json").exists()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_morphometry_threads_give_the_same_analysis(
    stand_ins, volume_file, tmp_path, monkeypatch, threads
):
    """The thread budget (OMP_NUM_THREADS) sets the morphometry's threads, not its numbers."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = analyze_mod.analyze_volume(volume_file, section_step=1, **SMALL)
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    other = analyze_mod.analyze_volume(volume_file, section_step=1, **SMALL)
    assert json.dumps(other["morphometry"], sort_keys=True) == json.dumps(
        one["morphometry"], sort_keys=True
    )
    assert other["score"] == one["score"]


@pytest.mark.parametrize("writer", ["write_overlays", "write_map_outputs"])
def test_background_writer_error_reaches_the_caller_and_no_analysis_json(
    stand_ins, volume_file, tmp_path, monkeypatch, writer
):
    """Overlays (during morphometry) and maps (during grading) are written in a thread;
    its error is not lost."""
    import threading

    from skinoct.study import _outputs

    seen = {}

    def failing(out_dir, *args):
        seen["thread"] = threading.current_thread().name
        raise OSError(f"{out_dir}: disk full")

    monkeypatch.setattr(_outputs, writer, failing)
    with pytest.raises(OSError, match="disk full"):
        analyze_mod.analyze_volume(volume_file, out_dir=tmp_path / "o", section_step=3, **SMALL)
    assert seen["thread"].startswith("skinoct-outputs")  # not the caller's thread
    assert not (tmp_path / "o" / "analysis.json").exists()  # the completion record comes last
