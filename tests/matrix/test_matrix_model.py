"""Model artifacts, preprocessing, prediction with torch and onnxruntime."""

import json

import numpy as np
import pytest
import torch

from skinoct.errors import InputError, ModelError
from skinoct.matrix import (
    MatrixModel,
    Preprocessing,
    expected_grade,
    load_matrix_model,
    predict_tiles,
    preprocess_tiles,
    save_matrix_model,
)


@pytest.fixture
def model_dir(tmp_path, make_calibrated_net):
    path = tmp_path / "model"
    net = make_calibrated_net(size=64)
    save_matrix_model(
        path, net, preprocessing=Preprocessing(input_size=64), provenance={"data": "test"}
    )
    return path


def test_roundtrip_keeps_predictions_and_manifest(model_dir):
    model = load_matrix_model(model_dir)
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["task"] == "matrix" and manifest["classes"] == [1, 2, 3, 4]
    assert manifest["preprocessing"]["normalization"] == "tile"
    assert manifest["preprocessing"]["channels"] == ["z-1um", "z", "z+1um"]
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (6, 3, 64, 64), dtype=np.uint8)
    p = predict_tiles(tiles, model)
    again = predict_tiles(tiles, load_matrix_model(model_dir), batch_size=4)
    np.testing.assert_allclose(p, again, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(p[:, 0]) > 1e-4  # input-dependent output (calibrated network)


def test_torch_and_onnx_probabilities_agree(model_dir):
    model = load_matrix_model(model_dir)
    tiles = np.random.default_rng(1).integers(0, 256, (5, 3, 80, 80), dtype=np.uint8)
    p_torch = predict_tiles(tiles, model, engine="torch")
    p_onnx = predict_tiles(tiles, model, engine="onnx", batch_size=2)
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)


def test_expected_grade():
    p = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25], [0, 0.5, 0.5, 0]])
    np.testing.assert_allclose(expected_grade(p), [1, 4, 2.5, 2.5])
    with pytest.raises(InputError, match="shape"):
        expected_grade(np.ones((2, 3)))


@pytest.mark.parametrize("normalization", ["tile", "imagenet", "paper"])
def test_preprocessing(normalization):
    tiles = np.stack([np.full((3, 40, 40), 10, np.uint8), np.full((3, 40, 40), 200, np.uint8)])
    tiles[:, 1] += 20
    x = preprocess_tiles(tiles, Preprocessing(input_size=32, normalization=normalization))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    if normalization == "tile":  # gain-invariant: both tiles have the same pattern
        torch.testing.assert_close(x[0], x[1])
        assert abs(float(x[0].mean())) < 1e-5
    elif normalization == "paper":
        assert float(x[1, 0, 0, 0]) == pytest.approx(200 / 127.5 - 1)
    else:
        assert float(x[0, 0, 0, 0]) == pytest.approx((10 / 255 - 0.485) / 0.229, rel=1e-5)


def test_predict_rejects_bad_tiles(model_dir):
    model = load_matrix_model(model_dir)
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        predict_tiles(np.zeros((2, 1, 64, 64)), model)
    with pytest.raises(InputError, match="NaN"):
        predict_tiles(np.full((1, 3, 64, 64), np.nan), model)
    with pytest.raises(InputError, match="engine"):
        predict_tiles(np.zeros((1, 3, 64, 64)), model, engine="tensorrt")


def test_load_refuses_other_tasks_and_tampering(model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    manifest = json.loads((copy / "model.json").read_text())
    manifest["task"] = "layers"
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="'matrix' model is needed"):
        load_matrix_model(copy)
    shutil.copytree(model_dir, tmp_path / "tampered")
    weights = tmp_path / "tampered" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_matrix_model(tmp_path / "tampered")


def test_model_object_is_usable_without_a_directory(make_calibrated_net):
    net = make_calibrated_net(size=32)
    model = MatrixModel(network=net, preprocessing=Preprocessing(input_size=32))
    p = predict_tiles(np.zeros((1, 3, 32, 32), np.uint8), model)
    assert p.shape == (1, 4)


def test_openvino_engine_agrees_with_torch_and_onnxruntime(model_dir):
    from skinoct.models import OpenVinoRunner

    model = load_matrix_model(model_dir)
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (7, 3, 64, 64), dtype=np.uint8)
    p_torch = predict_tiles(tiles, model)
    p_openvino = predict_tiles(tiles, model, engine="openvino", batch_size=4)
    assert p_openvino.shape == (7, 4)
    np.testing.assert_allclose(p_openvino.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p_openvino, p_torch, atol=0.05)  # bfloat16 where supported
    # float32 in OpenVINO gives onnxruntime's logits on the same exported file
    x = (tiles.astype(np.float32)).copy()
    exact = OpenVinoRunner(model.onnx_path(), precision="f32")
    np.testing.assert_allclose(exact(x), model.onnx_runner()(x), atol=1e-3)
    with pytest.raises(ModelError, match="precision"):
        OpenVinoRunner(model.onnx_path(), precision="int4")
    # uint8 in: converted inside the graph, the same logits as float32 in
    as_uint8 = OpenVinoRunner(model.onnx_path(), precision="f32", input_type="u8")
    np.testing.assert_array_equal(as_uint8(tiles), exact(x))
    with pytest.raises(ModelError, match="input_type"):
        OpenVinoRunner(model.onnx_path(), input_type="f16")


@pytest.mark.parametrize("threads", [1, 2])
def test_openvino_throughput_mode_splits_batches_in_order(model_dir, threads):
    """Requests of ``request_batch`` tiles on OpenVINO's streams give the logits of one
    request, tile for tile (an uneven last request included)."""
    pytest.importorskip("openvino")
    from skinoct.models import OpenVinoRunner

    model = load_matrix_model(model_dir)
    tiles = np.random.default_rng(4).integers(0, 256, (11, 3, 64, 64), dtype=np.uint8)
    # the matrix model's runner is the throughput one (and exports the file)
    assert model.openvino_runner(threads=threads, input_type="u8").mode == "throughput"
    path = model.onnx_path()
    one = OpenVinoRunner(path, precision="f32", input_type="u8", threads=threads)
    split = OpenVinoRunner(
        path, precision="f32", input_type="u8", threads=threads, mode="throughput",
        request_batch=3,
    )  # fmt: skip
    assert one.streams == 1
    assert 1 <= split.streams <= threads  # OpenVINO chooses (2 of 1 thread on 2 cores here)
    expected = one(tiles)
    np.testing.assert_allclose(split(tiles), expected, atol=1e-5)
    np.testing.assert_allclose(split(tiles[:2]), expected[:2], atol=1e-5)  # one request
    # tiles permuted in: logits permuted out (no request's result lands in another's slot)
    order = np.random.default_rng(5).permutation(len(tiles))
    np.testing.assert_allclose(split(tiles[order]), expected[order], atol=1e-5)
    with pytest.raises(ModelError, match="mode"):
        OpenVinoRunner(path, mode="fast")
    with pytest.raises(ModelError, match="request_batch"):
        OpenVinoRunner(path, mode="throughput", request_batch=0)


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_uint8_tiles_skip_torch_preprocessing_with_the_same_result(
    model_dir, engine, monkeypatch
):
    """uint8 tiles of the input size go to the exported engine directly (no resize)."""
    import skinoct.matrix._model as model_module

    model = load_matrix_model(model_dir)
    size = int(model.preprocessing.input_size)
    tiles = np.random.default_rng(2).integers(0, 256, (5, 3, size, size), dtype=np.uint8)
    via_float = predict_tiles(tiles.astype(np.float32), model, engine=engine, batch_size=2)

    def no_torch_preprocessing(*args, **kwargs):
        raise AssertionError("uint8 tiles of the input size went through preprocess_tiles")

    with monkeypatch.context() as patch:
        patch.setattr(model_module, "preprocess_tiles", no_torch_preprocessing)
        direct = predict_tiles(tiles, model, engine=engine, batch_size=2)
    np.testing.assert_allclose(direct, via_float, atol=1e-6)
    # another size still goes through the resize
    small = tiles[:, :, : size // 2, : size // 2]
    assert predict_tiles(small, model, engine=engine).shape == (5, 4)


def test_openvino_engine_without_openvino_says_how_to_install(model_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    model = load_matrix_model(model_dir)
    with pytest.raises(ModelError, match=r"pip install 'skinoct\[openvino\]'"):
        predict_tiles(np.zeros((1, 3, 64, 64), np.uint8), model, engine="openvino")


@pytest.mark.parametrize("engine", ["torch", "onnx", "openvino"])
def test_tta_is_invariant_to_the_tile_symmetries_and_averages_the_views(model_dir, engine):
    from skinoct.matrix._model import TTA_VIEWS

    model = load_matrix_model(model_dir)
    rng = np.random.default_rng(3)
    tiles = rng.integers(0, 256, (5, 3, 64, 64), dtype=np.uint8)
    p = predict_tiles(tiles, model, engine=engine, tta=True, batch_size=16)  # 2 tiles × 8 views
    assert p.shape == (5, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    views = []
    for k, flip in TTA_VIEWS:
        view = np.rot90(tiles, k, axes=(2, 3))
        view = np.ascontiguousarray(view[:, :, ::-1] if flip else view)
        views.append(predict_tiles(view, model, engine=engine))
    np.testing.assert_allclose(p, np.mean(views, axis=0), atol=1e-5)
    assert np.abs(views[0] - views[1]).max() > 1e-3  # the views differ: the check has teeth
    for k in (1, 2, 3):  # a rotated or mirrored tile gets the same averaged probabilities
        turned = np.ascontiguousarray(np.rot90(tiles, k, axes=(2, 3)))
        np.testing.assert_allclose(
            predict_tiles(turned, model, engine=engine, tta=True), p, atol=1e-5
        )
    mirrored = np.ascontiguousarray(tiles[:, :, :, ::-1])
    np.testing.assert_allclose(
        predict_tiles(mirrored, model, engine=engine, tta=True), p, atol=1e-5
    )
