"""Device resolution and engine choice (``engine='auto'``), with and without OpenVINO."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import skinoct.models._runtime as runtime
from skinoct.errors import InputError
from skinoct.models import ENGINES, resolve_device, resolve_engine


def test_resolve_device_returns_a_torch_device_and_one_error_type():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(InputError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_engines_are_one_tuple_shared_by_both_tasks():
    import skinoct.layers
    import skinoct.matrix

    assert skinoct.layers.ENGINES is skinoct.matrix.ENGINES is ENGINES
    assert set(ENGINES) == {"auto", "torch", "onnx", "openvino", "openvino-int8"}
    with pytest.raises(InputError, match="engine must be one of"):
        resolve_engine("trt")
    assert resolve_engine("torch") == "torch"


@pytest.mark.parametrize(
    ("openvino", "bf16", "onnx", "task", "expected"),
    [
        (True, True, True, "matrix", "openvino"),
        (True, False, True, "matrix", "onnx"),  # OpenVINO was only faster with native bf16
        (True, False, True, "layers", "onnx"),  # the f32 U-Net: onnxruntime was faster
        (True, True, True, "layers", "onnx"),
        (False, True, True, "matrix", "onnx"),  # clean fallback without OpenVINO
        (False, True, True, "layers", "onnx"),
        (False, False, False, "layers", "torch"),
    ],
)
def test_auto_picks_the_fastest_installed_engine(monkeypatch, openvino, bf16, onnx, task, expected):
    monkeypatch.setattr(runtime, "openvino_available", lambda: openvino)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: bf16)
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: onnx)
    assert resolve_engine("auto", task=task, device="cpu") == expected
    assert resolve_engine("auto", task=task, device="cuda") == "torch"


def test_auto_falls_back_when_openvino_cannot_be_imported(monkeypatch, matrix_model_dir):
    from skinoct.matrix import load_matrix_model, predict_tiles

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert not runtime.openvino_available()
    assert resolve_engine("auto", task="matrix", device="cpu") == "onnx"
    model = load_matrix_model(matrix_model_dir)
    tiles = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    p_auto = predict_tiles(tiles, model, engine="auto")
    np.testing.assert_allclose(p_auto, predict_tiles(tiles, model, engine="torch"), atol=1e-4)
    assert model.provenance(engine="onnx")["engine"] == "onnx"


def test_layers_auto_engine_segments_like_torch(monkeypatch, layers_model_dir):
    from skinoct.layers import load_layers_model, segment_section

    model = load_layers_model(layers_model_dir)
    image = np.random.default_rng(3).random((40, 56)).astype(np.float32)
    a = segment_section(image, model, spacing_um=(1.0, 2.0), engine="torch", device="cpu")
    b = segment_section(image, model, spacing_um=(1.0, 2.0), engine="auto", device="cpu")
    np.testing.assert_allclose(a.entropy, b.entropy, atol=1e-3)
    # MC-dropout needs the torch network: 'auto' takes it instead of failing
    c = segment_section(image, model, spacing_um=(1.0, 2.0), engine="auto", mc_dropout=2)
    assert c.mutual_information is not None


def test_cpu_flags_are_read_once():
    runtime.cpu_has_bf16.cache_clear()
    assert isinstance(runtime.cpu_has_bf16(), bool)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("", None), ("0", None), ("x", None)])
def test_default_threads_follow_omp_num_threads(monkeypatch, value, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert runtime.default_threads() == expected


def test_exported_runners_keep_to_the_thread_budget(monkeypatch, matrix_model_dir):
    """A study worker's OMP_NUM_THREADS reaches onnxruntime and OpenVINO, which would
    otherwise take every core."""
    from skinoct.matrix import load_matrix_model
    from skinoct.models import OnnxRunner

    path = load_matrix_model(matrix_model_dir).onnx_path()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert OnnxRunner(path).session.get_session_options().intra_op_num_threads == 1
    assert OnnxRunner(path, threads=2).session.get_session_options().intra_op_num_threads == 2
    if runtime.openvino_available():
        from skinoct.models import OpenVinoRunner

        assert OpenVinoRunner(path).compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_state_digest_takes_zero_dim_tensors_and_sees_their_value():
    import torch

    from skinoct.models._provenance import state_digest

    # BatchNorm keeps num_batches_tracked as a 0-d int64 tensor
    a = {"w": torch.ones(2, 3), "n": torch.tensor(5)}
    b = {"w": torch.ones(2, 3), "n": torch.tensor(6)}
    assert state_digest(a) == state_digest({"n": torch.tensor(5), "w": torch.ones(2, 3)})
    assert state_digest(a) != state_digest(b)
