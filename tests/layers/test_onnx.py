import numpy as np
import pytest
from _layers_synthetic import synthetic_section

from skinoct.layers import load_layers_model, predict_logits, segment_section

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("shape", [(1, 1, 32, 48), (3, 1, 64, 16)])
def test_onnx_logits_equal_torch(tiny_model, shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    torch_logits = predict_logits(tiny_model, x, engine="torch")
    onnx_logits = predict_logits(tiny_model, x, engine="onnx")
    assert onnx_logits.shape == torch_logits.shape == (shape[0], 4, *shape[2:])
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=0, atol=1e-4)


def test_bundled_onnx_logits_equal_torch():
    model = load_layers_model()
    d = model.spec.divisor  # the raw network needs sizes it can halve at every level
    x = np.random.default_rng(1).normal(size=(1, 1, d, 2 * d)).astype(np.float32)
    np.testing.assert_allclose(
        predict_logits(model, x, engine="onnx"),
        predict_logits(model, x, engine="torch"),
        rtol=0,
        atol=1e-4,
    )


def test_onnx_engine_segments_like_torch(tiny_model):
    image, _ = synthetic_section(np.random.default_rng(2), (45, 67))
    a = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), engine="torch", device="cpu")
    b = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), engine="onnx")
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
    assert np.mean(a.labels == b.labels) > 0.999


def test_onnx_cache_location(tiny_model_dir, tmp_path, monkeypatch):
    model = load_layers_model(tiny_model_dir)
    path = model.onnx_path()
    assert path.parent == tiny_model_dir and model.weights_sha256[:16] in path.name
    model.onnx_runner()
    assert path.is_file()
    # The bundled model is never written into the package: the user cache instead.
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "c"))
    bundled = load_layers_model()
    assert bundled.onnx_path().is_relative_to(tmp_path / "c")


def test_runner_without_spinning_gives_the_same_logits(tiny_model, tmp_path):
    from skinoct.models import OnnxRunner

    path = tiny_model.export_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(3).normal(size=(2, 1, 16, 32)).astype(np.float32)
    np.testing.assert_array_equal(OnnxRunner(path, spin=False)(x), OnnxRunner(path)(x))
