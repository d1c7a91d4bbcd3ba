import json

import numpy as np
import pytest
from _layers_synthetic import synthetic_section

from skinoct.io import read_image, write_image
from skinoct.layers import load_layers_model, ordering_violations

OUTPUTS = ("_mask.tif", "_entropy.tif", "_overlay.png", "_entropy.png", ".metrics.json")


@pytest.fixture
def sections(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for i, (shape, spacing) in enumerate([((45, 67), (1.0, 1.0)), ((33, 50), (0.8, 1.6))]):
        image, _ = synthetic_section(rng, shape, surface=6, sc=4, epidermis=10)
        paths.append(
            write_image(tmp_path / f"sec{i}.ome.tif", image, spacing_um=spacing, axes="zx")
        )
    return paths


def test_train_command_writes_model_and_prints_the_cv_table(run_cli, dataset_dir, tmp_path):
    out = tmp_path / "model"
    code, stdout, stderr = run_cli(
        "layers",
        "train",
        dataset_dir,
        "--out",
        out,
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--patch",
        "32",
        "32",
        "--patches-per-section",
        "1",
        "--device",
        "cpu",
        "--seed",
        "3",
        "--layer-intensity",
        "0.5",
        "--resolution",
        "0.5",
    )
    assert code == 0, stderr
    assert "Cross-validation Dice" in stdout and "mean ± sd" in stdout
    # the recipe (patch etc. set explicitly here) and the paired comparison line
    assert "recipe: patch [32, 32]" in stdout and "set by you:" in stdout
    assert "validation sections: this model mean Dice" in stdout and "bundled model" in stdout
    assert "fold 2/2" in stderr  # progress lines (no TTY)
    model = load_layers_model(out)
    assert model.manifest["training"]["seed"] == 3
    assert model.manifest["training"]["layer_intensity"] == 0.5  # recorded with the run
    assert model.manifest["training"]["resolution"] == 0.5
    assert json.loads((out / "cv_report.json").read_text())["folds"][1]["fold"] == 1


def test_train_with_a_time_budget_uses_a_hold_out_split(
    run_cli, dataset_dir, tmp_path, monkeypatch
):
    from skinoct.layers import _calibration

    # The tiny model finds no DEJ on these sections: fake its flag scores.
    monkeypatch.setattr(_calibration, "section_flag_scores", lambda m, s, **kw: [0.2] * len(s))
    out = tmp_path / "budget"
    code, stdout, err = run_cli(
        "layers", "train", dataset_dir, "--out", out, "--time-budget", "0.5", "--epochs", "2",
        "--device", "cpu", "--no-compare",
    )  # fmt: skip
    assert code == 0, err
    manifest = load_layers_model(out).manifest["training"]
    assert manifest["time_budget_s"] == 30.0
    assert manifest["recipe"]["chosen"]["folds"] == 1
    assert "time budget" in manifest["recipe"]["reasons"]["folds"]
    assert "Hold-out validation Dice" in stdout and "on the same" not in stdout
    # the band and length it was calibrated with: the bundled model's (no own calibration yet)
    from skinoct.morphometry import default_entropy_band_um, default_min_segment_um

    assert (
        "DEJ-uncertainty threshold 0.200 (calibrated on 2 clean validation sections; band "
        f"±{default_entropy_band_um():g} µm, stretches of at least {default_min_segment_um():g} µm)"
    ) in " ".join(stdout.split())


def test_train_command_bad_options_exit_2(run_cli, dataset_dir, tmp_path):
    code, _, err = run_cli(
        "layers", "train", dataset_dir, "--out", tmp_path / "m", "--patch", "30", "32"
    )
    assert code == 2 and "multiples of 16" in err and "Traceback" not in err
    code, _, err = run_cli(
        "layers", "train", dataset_dir, "--out", tmp_path / "m", "--layer-intensity", "1.5"
    )
    assert code == 2 and "layer_intensity must be a probability" in err
    code, _, err = run_cli(
        "layers", "train", dataset_dir, "--out", tmp_path / "m", "--resolution", "2"
    )
    assert code == 2 and "resolution must be a probability" in err and "Traceback" not in err
    code, _, err = run_cli("layers", "train", tmp_path / "none", "--out", tmp_path / "m")
    assert code == 2 and "dataset folder not found" in err
    code, _, err = run_cli("layers", "train", dataset_dir, "--out", tmp_path / "m", "--levels", "9")
    assert code == 2 and "levels must be an integer in 2-8" in err and "Traceback" not in err


def test_segment_writes_every_output(run_cli, sections, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("layers", "segment", *sections, "--out", out, "--model", tiny_model_dir)
    assert code == 0, err
    for path in sections:
        stem = path.name.removesuffix(".ome.tif")
        for suffix in OUTPUTS:
            assert (out / f"{stem}{suffix}").is_file(), suffix
        image = read_image(path)
        mask = read_image(out / f"{stem}_mask.tif")
        entropy = read_image(out / f"{stem}_entropy.tif")
        assert mask.shape == entropy.shape == image.shape
        assert mask.spacing_um == pytest.approx(image.spacing_um)
        assert mask.data.dtype == np.uint8 and entropy.data.dtype == np.float32
        from PIL import Image

        for suffix in ("_overlay.png", "_entropy.png"):
            png = np.asarray(Image.open(out / f"{stem}{suffix}"))
            assert png.shape == (*image.shape, 3)
        record = json.loads((out / f"{stem}.metrics.json").read_text())
        assert record["spacing_um"] == pytest.approx(list(image.spacing_um))
        assert record["model"]["weights_sha256"] == load_layers_model(tiny_model_dir).weights_sha256
        # the manifest is part of the recorded identity (issue 15)
        identity = load_layers_model(tiny_model_dir).provenance()
        assert record["model"]["model_digest"] == identity["model_digest"] is not None
        assert "metrics" in record


def test_corrupt_image_is_skipped_with_exit_1(run_cli, sections, tiny_model_dir, tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 definitely not a tiff")
    out = tmp_path / "out"
    code, _, err = run_cli(
        "-q",
        "layers",
        "segment",
        sections[0],
        bad,
        sections[1],
        "--out",
        out,
        "--model",
        tiny_model_dir,
    )
    assert code == 1
    assert "broken.tif" in err and "1 of 3 failed" in err and "Traceback" not in err
    for path in sections:
        assert (out / f"{path.name.removesuffix('.ome.tif')}_mask.tif").is_file()
    assert not list(out.glob("broken*"))


def test_all_inputs_failing_exit_2(run_cli, tiny_model_dir, tmp_path):
    volume = tmp_path / "vol.npy"
    np.save(volume, np.zeros((3, 4, 5), np.float32))
    code, _, err = run_cli(
        "layers",
        "segment",
        volume,
        tmp_path / "gone.tif",
        "--out",
        tmp_path / "o",
        "--model",
        tiny_model_dir,
    )
    assert code == 2 and "vol.npy" in err and "gone.tif" in err


def test_segment_onnx_engine_and_spacing_override(run_cli, sections, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(
        "layers",
        "segment",
        sections[0],
        "--out",
        out,
        "--model",
        tiny_model_dir,
        "--engine",
        "onnx",
        "--tta",
        "--spacing",
        "2",
        "0.5",
    )
    assert code == 0, err
    stem = sections[0].name.removesuffix(".ome.tif")
    mask = read_image(out / f"{stem}_mask.tif")
    assert mask.spacing_um == pytest.approx((2.0, 0.5))
    record = json.loads((out / f"{stem}.metrics.json").read_text())
    assert record["options"] == {
        "engine": "onnx",
        "tta": True,
        "mc_dropout": 0,
        "ensemble": False,
        "decoding": "ordered",
    }
    assert ordering_violations(read_image(out / f"{stem}_mask.tif").data) == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        # checked by the library: the message names the argument
        (["--engine", "onnx", "--mc-dropout", "2"], "mc_dropout needs engine='torch'"),
        (["--engine", "cuda"], "engine must be one of"),
        (["--decoding", "greedy"], "decoding must be one of"),
        (["--model", "/no/such/model"], "model directory not found"),
    ],
)
def test_segment_bad_options_exit_2(run_cli, sections, tmp_path, args, match):
    code, _, err = run_cli("layers", "segment", sections[0], "--out", tmp_path / "o", *args)
    assert code == 2 and match in err


def test_segment_without_model_uses_the_bundled_one_and_says_so(run_cli, tmp_path):
    from skinoct.phantom import SectionParams, render_section

    section = render_section(SectionParams(width_um=300, depth_um=256), seed=2)
    path = write_image(
        tmp_path / "phantom.ome.tif", section.image, spacing_um=section.spacing_um, axes="zx"
    )
    code, _, err = run_cli(
        "layers", "segment", path, "--out", tmp_path / "out", "--mc-dropout", "2"
    )
    assert code == 0, err
    assert "synthetic" in err  # the phantom-only notice
    record = json.loads((tmp_path / "out" / "phantom.metrics.json").read_text())
    assert record["model"]["trained_on_synthetic_data"] is True
    metrics = record["metrics"]
    assert metrics["coverage"]["dej"] > 0.9 and metrics["dej_entropy_mean"] is not None


def test_export_command_checks_onnx_against_torch(run_cli, tiny_model_dir, tmp_path):
    target = tmp_path / "m.onnx"
    code, out, err = run_cli("layers", "export", tiny_model_dir, "--onnx", target)
    assert code == 0, err
    assert target.is_file() and "max |logit difference|" in out
    from skinoct.models import OnnxRunner

    x = np.zeros((1, 1, 16, 20), np.float32)
    assert OnnxRunner(target)(x).shape == (1, 4, 16, 20)


def test_evaluate_command(run_cli, dataset_dir, tiny_model_dir, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = run_cli(
        "layers",
        "evaluate",
        dataset_dir,
        "--model",
        tiny_model_dir,
        "--out",
        report,
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "Dice on" in out
    data = json.loads(report.read_text())
    assert data["n_sections"] == 6 and len(data["sections"]) == 6
    assert set(data["summary"]) == {"stratum_corneum", "epidermis", "dermis", "mean_dice"}


def test_segment_lets_openmp_threads_sleep_unless_told_otherwise(
    run_cli, sections, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    code, _, _ = run_cli(
        "layers", "segment", sections[0], "--out", tmp_path / "a", "--model", tiny_model_dir
    )
    assert code == 0
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    run_cli("layers", "segment", sections[0], "--out", tmp_path / "b", "--model", tiny_model_dir)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice wins


def test_train_can_fine_tune_the_bundled_model(run_cli, dataset_dir, tmp_path):
    out = tmp_path / "tuned"
    code, _, err = run_cli(
        "-q",
        "layers",
        "train",
        dataset_dir,
        "--out",
        out,
        "--folds",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--patch",
        "64",  # the bundled model's 7 levels need multiples of 64
        "64",
        "--patches-per-section",
        "1",
        "--device",
        "cpu",
        "--init",
        "bundled",
    )
    assert code == 0, err
    tuned = load_layers_model(out)
    bundled = load_layers_model()
    assert tuned.spec == bundled.spec and tuned.spacing_um == bundled.spacing_um
    assert tuned.manifest["training"]["init"]["sha256"] == bundled.weights_sha256
    assert tuned.weights_sha256 != bundled.weights_sha256


def test_train_deepens_the_bundled_model_with_levels(run_cli, dataset_dir, tmp_path):
    out = tmp_path / "deep"
    code, stdout, err = run_cli(
        "layers", "train", dataset_dir, "--out", out, "--folds", "0", "--epochs", "1",
        "--batch-size", "2", "--patch", "32", "64", "--patches-per-section", "1",
        "--device", "cpu", "--init", "bundled", "--levels", "6", "--no-compare",
    )  # fmt: skip
    assert code == 0, err
    tuned, bundled = load_layers_model(out), load_layers_model()
    assert tuned.spec == bundled.spec.with_levels(6)
    assert tuned.spec.channels == (8, 16, 32, 64, 128, 128)
    assert "set by you" in stdout and "levels" in stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], None),  # auto: the fastest engine installed here
        (["--mc-dropout", "2"], "torch"),  # MC-dropout needs the torch network
    ],
)
def test_segment_default_engine_is_auto_and_the_outputs_name_the_one_that_ran(
    run_cli, sections, tiny_model_dir, tmp_path, args, expected
):
    from skinoct.models import resolve_engine

    expected = expected or resolve_engine("auto", task="layers", device="cpu")
    out = tmp_path / "out"
    code, _, err = run_cli(
        "layers", "segment", sections[0], "--out", out, "--model", tiny_model_dir,
        "--device", "cpu", *args,
    )  # fmt: skip
    assert code == 0, err
    stem = sections[0].name.removesuffix(".ome.tif")
    record = json.loads((out / f"{stem}.metrics.json").read_text())
    assert record["options"]["engine"] == expected
    assert ordering_violations(read_image(out / f"{stem}_mask.tif").data) == 0
