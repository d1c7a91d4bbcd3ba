"""``skinoct matrix …`` end to end (in-process through the entry point)."""

import json

import numpy as np
import pandas as pd
import pytest

from skinoct.io import write_image


@pytest.fixture
def volume_files(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((40, 60, 130)).astype(np.float32)
    path = write_image(tmp_path / "vol.ome.tif", data, spacing_um=(1, 1, 1), axes="zyx")
    dej = tmp_path / "dej.npy"
    np.save(dej, 10 + 0.02 * np.arange(130)[None].repeat(60, 0))
    return path, dej


def test_tiles_then_predict_then_evaluate(run_cli, tmp_path, volume_files, trained_model_dir):
    volume, dej = volume_files
    out = tmp_path / "tiles"
    code, stdout, _ = run_cli(
        "matrix",
        "tiles",
        volume,
        "--dej",
        dej,
        "--out",
        out,
        "--tile-size",
        40,
        "--out-size",
        32,
        "--stop",
        20,
    )
    assert code == 0, stdout
    index = pd.read_csv(out / "tiles.csv")
    assert len(index) == 10  # depths 0, 5, 10, 15 µm: 3 + 2 + 3 + 2 tiles
    assert {"tile_id", "volume_id", "subject", "depth_um", "row", "col"} <= set(index.columns)
    assert sorted(p.stem for p in (out / "tiles").glob("*.png")) == sorted(index["tile_id"])

    # Re-tiling the same volume replaces its rows instead of duplicating them.
    code, _, _ = run_cli(
        "matrix",
        "tiles",
        volume,
        "--dej",
        "12",
        "--out",
        out,
        "--tile-size",
        40,
        "--out-size",
        32,
        "--stop",
        10,
    )
    assert code == 0 and len(pd.read_csv(out / "tiles.csv")) == 5
    assert len(list((out / "tiles").glob("*.png"))) == 5

    pred = tmp_path / "pred.csv"
    code, stdout, _ = run_cli(
        "matrix",
        "predict",
        out,
        volume,
        "--dej",
        dej,
        "--tile-size",
        40,
        "--stop",
        4,
        "--model",
        trained_model_dir,
        "--out",
        pred,
    )
    assert code == 0, stdout
    table = pd.read_csv(pred)
    assert len(table) == 5 + 4 * 3  # the dataset's tiles + 4 depths × 3 profile tiles
    probs = table[["p_1", "p_2", "p_3", "p_4"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(table["expected_grade"], probs @ [1, 2, 3, 4], atol=1e-4)
    assert table["grade"].isin([1, 2, 3, 4]).all()

    onnx_pred = tmp_path / "pred_onnx.csv"
    code, _, _ = run_cli(
        "matrix",
        "predict",
        out,
        "--engine",
        "onnx",
        "--model",
        trained_model_dir,
        "--out",
        onnx_pred,
    )
    assert code == 0
    np.testing.assert_allclose(pd.read_csv(onnx_pred)["p_1"], table["p_1"][:5], atol=1e-4)

    # --engine openvino: the same export through OpenVINO (bfloat16 where supported)
    openvino_pred = tmp_path / "pred_openvino.csv"
    code, stdout, _ = run_cli(
        "matrix", "predict", out, "--engine", "openvino", "--model", trained_model_dir,
        "--out", openvino_pred,
    )  # fmt: skip
    assert code == 0 and "(openvino" in stdout
    np.testing.assert_allclose(pd.read_csv(openvino_pred)["p_1"], table["p_1"][:5], atol=0.05)

    # --tta: the 8-view average, the same through the API
    tta_pred = tmp_path / "pred_tta.csv"
    code, stdout, _ = run_cli(
        "matrix", "predict", out, "--tta", "--model", trained_model_dir, "--out", tta_pred
    )
    assert code == 0 and "8-view TTA" in stdout
    from skinoct.matrix import load_matrix_model, predict_tiles, read_tile_png

    tta_table = pd.read_csv(tta_pred, dtype={"tile_id": str})
    tiles = np.stack([read_tile_png(out / "tiles" / f"{t}.png") for t in tta_table["tile_id"]])
    expected = predict_tiles(tiles, load_matrix_model(trained_model_dir), tta=True)
    np.testing.assert_allclose(tta_table["p_1"], expected[:, 0], atol=1e-4)

    # evaluate predict's output against labels joined by tile id
    labels = pd.DataFrame({"tile_id": table["tile_id"][:5], "grade": [1, 2, 3, 4, 4]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code, stdout, _ = run_cli(
        "matrix", "evaluate", onnx_pred, "--labels", tmp_path / "labels.csv", "--json"
    )
    assert code == 0
    record = json.loads(stdout)
    assert record["n"] == 5 and sum(map(sum, record["confusion_matrix"])) == 5


def test_evaluate_json_and_outputs(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    true = rng.integers(1, 5, 60)
    pd.DataFrame({"true": true, "pred": np.where(rng.random(60) < 0.8, true, 1)}).to_csv(
        tmp_path / "p.csv", index=False
    )
    code, stdout, _ = run_cli(
        "matrix", "evaluate", tmp_path / "p.csv", "--json", "--out", tmp_path / "ev"
    )
    assert code == 0
    record = json.loads(stdout)
    assert set(record["per_class"]) == {"1", "2", "3", "4"}
    assert {"precision", "recall", "support"} <= set(record["per_class"]["3"])
    assert len(record["confusion_matrix"]) == 4
    assert record == json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    rows = pd.read_csv(tmp_path / "ev" / "confusion.csv")
    assert rows.groupby("true")["row_percent"].sum().round(6).eq(100).all()
    code, stdout, _ = run_cli("matrix", "evaluate", tmp_path / "p.csv")
    assert code == 0 and "accuracy" in stdout and "macro" in stdout


def test_train_cli_and_export(run_cli, tmp_path, make_tile_dataset):
    data = make_tile_dataset(tmp_path / "data", raters=True)
    code, stdout, stderr = run_cli(
        "matrix",
        "train",
        data,
        "--out",
        tmp_path / "m",
        "--input-size",
        32,
        "--augment",
        2,
        "--batch-size",
        4,
        "--epochs",
        1,
        "--device",
        "cpu",
        "--lr-schedule",
        "cosine",
        "--bn-recalibration",
        8,
    )
    assert code == 0, stderr
    assert "test accuracy" in stdout
    assert "Fleiss' kappa" in stderr and "from scratch" in stderr
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert manifest["training"]["data"]["raters"] == [f"rater_{i}" for i in range(1, 7)]
    assert manifest["training"]["config"]["lr_schedule"] == "cosine"
    assert manifest["training"]["config"]["bn_recalibration"] == 8
    code, stdout, _ = run_cli("matrix", "export", tmp_path / "m", "--onnx", tmp_path / "m.onnx")
    assert code == 0 and (tmp_path / "m.onnx").stat().st_size > 1_000_000
    assert "max |Δp| vs torch" in stdout


def test_layers_table(run_cli):
    code, stdout, _ = run_cli("matrix", "layers", "--csv")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 + 235
    assert lines[100].startswith("99,expanded_conv_5/squeeze_excite/Conv,Conv2D,")
    assert lines[100].endswith(",1") and lines[101].endswith(",0")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["predict", "{tmp}/missing.png", "--out", "{tmp}/p.csv", "--model", "{m}"], "not found"),
        (["predict", "{tmp}/vol.npy", "--out", "{tmp}/p.csv", "--model", "{m}"], "DEJ depth"),
        (["predict", "{tmp}/t.png", "--out", "{tmp}/p.csv", "--engine", "trt"], "--engine"),
        (["predict", "{tmp}/t.png", "--out", "{tmp}/p.csv", "--model", "{tmp}"], "not a skinoct"),
        (["tiles", "{tmp}/vol.npy", "--dej", "abc", "--out", "{tmp}/o"], "neither a number"),
        (["tiles", "{tmp}/vol.npy", "--dej", "3", "--out", "{tmp}/o"], "smaller than a 400"),
        (["evaluate", "{tmp}/bad.csv"], "columns 'true' and 'pred'"),
        (["evaluate", "{tmp}/nope.csv"], "not found"),
        (["train", "{tmp}", "--out", "{tmp}/m"], "labels file not found"),
        (["train", "{tmp}", "--out", "{tmp}/m", "--split", "kfold"], "split must be"),
        (["train", "{tmp}", "--out", "{tmp}/m", "--lr-schedule", "step"], "lr_schedule must be"),
        (["export", "{tmp}", "--onnx", "{tmp}/m.onnx"], "not a skinoct model"),
    ],
)
def test_bad_inputs_exit_2(run_cli, tmp_path, args, match, trained_model_dir):
    np.save(tmp_path / "vol.npy", np.zeros((8, 20, 20), np.float32))
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "t.png")
    (tmp_path / "bad.csv").write_text("true,guess\n1,2\n")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{m}", str(trained_model_dir)) for a in args]
    code, _, stderr = run_cli("matrix", *args)
    assert code == 2
    # one error line (warnings, e.g. a .npy without spacing, print in lines of their own)
    errors = [ln for ln in stderr.strip().splitlines() if not ln.startswith("warning: ")]
    assert match in stderr and len(errors) == 1


def test_batch_with_one_bad_input_exits_1(run_cli, tmp_path, trained_model_dir):
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "good.png")
    code, _, stderr = run_cli(
        "matrix",
        "predict",
        tmp_path / "good.png",
        tmp_path / "bad.png",
        "--model",
        trained_model_dir,
        "--out",
        tmp_path / "p.csv",
    )
    assert code == 1 and "bad.png" in stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


def test_predict_records_the_engine_auto_chose(run_cli, tmp_path, trained_model_dir, monkeypatch):
    """`--engine auto` is the default; the provenance sidecar names the engine that ran."""
    import sys

    from PIL import Image

    from skinoct.matrix import load_matrix_model

    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "t.png")
    code, stdout, stderr = run_cli(
        "matrix", "predict", tmp_path / "t.png", "--model", trained_model_dir,
        "--out", tmp_path / "p.csv",
    )  # fmt: skip
    assert code == 0, stderr
    record = json.loads((tmp_path / "p.provenance.json").read_text())
    engine = load_matrix_model(trained_model_dir).engine_for("auto")
    assert record["model"]["engine"] == engine != "auto" and f"({engine}" in stdout
    assert record["n_tiles"] == 1 and record["model"]["weights_sha256"]
    # without OpenVINO auto falls back to onnxruntime, and says so
    monkeypatch.setitem(sys.modules, "openvino", None)
    code, _, _ = run_cli(
        "matrix", "predict", tmp_path / "t.png", "--model", trained_model_dir,
        "--out", tmp_path / "q.csv",
    )  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "q.provenance.json").read_text())["model"]["engine"] == "onnx"
