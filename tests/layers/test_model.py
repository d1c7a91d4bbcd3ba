import json
import shutil

import numpy as np
import pytest
import torch

from skinoct.errors import ModelError
from skinoct.layers import load_layers_model, save_layers_model
from skinoct.models import save_artifact


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(model_dir, **changes):
    path = model_dir / "model.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_save_load_round_trip(tiny_model_dir, tmp_path):
    model = load_layers_model(tiny_model_dir)
    assert model.class_names == ("air", "stratum_corneum", "epidermis", "dermis")
    assert model.spacing_um == (1.0, 2.0)
    assert model.weights_sha256 and model.path == tiny_model_dir
    manifest = model.manifest
    assert manifest["task"] == "layers"
    assert manifest["architecture"]["name"] == "monai.networks.nets.UNet"
    assert manifest["preprocessing"]["normalization"]["method"] == "percentile"
    # Save again elsewhere: same weights, same predictions.
    again = load_layers_model(save_layers_model(tmp_path / "copy", model))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value, rtol=0, atol=0)
    x = np.random.default_rng(0).normal(size=(1, 1, 16, 24)).astype(np.float32)
    from skinoct.layers import predict_logits

    np.testing.assert_array_equal(predict_logits(model, x), predict_logits(again, x))


def test_tampered_weights_are_refused(tiny_model_dir, tmp_path):
    bad = _copy(tiny_model_dir, tmp_path / "bad")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_layers_model(bad)


def test_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="not a skinoct model"):
        load_layers_model(tmp_path)
    (tmp_path / "model.json").write_text('{"hello": 1}')
    with pytest.raises(ModelError, match="not a skinoct model"):
        load_layers_model(tmp_path)


def test_model_of_another_task_is_refused(tmp_path):
    save_artifact(tmp_path, {"w": torch.zeros(2)}, {"task": "matrix", "architecture": {}})
    with pytest.raises(ModelError, match="'matrix' model"):
        load_layers_model(tmp_path)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"classes": ["air", "skin"], "label_values": [0, 9]}, "unknown class set"),
        ({"classes": ["air", "dermis", "epidermis", "stratum_corneum"]}, "unknown class set"),
        ({"architecture": {"name": "torchvision.resnet18", "args": {}}}, "unknown architecture"),
        ({"classes": ["air", "dermis"], "label_values": [0, 3]}, "3 outputs for 2 classes|4 out"),
    ],
)
def test_unknown_manifest_content_is_refused(tiny_model_dir, tmp_path, changes, match):
    bad = _copy(tiny_model_dir, tmp_path / "bad")
    _edit_manifest(bad, **changes)
    with pytest.raises(ModelError, match=match):
        load_layers_model(bad)


def test_weights_that_do_not_fit_the_architecture(tiny_model_dir, tmp_path):
    bad = _copy(tiny_model_dir, tmp_path / "bad")
    manifest = json.loads((bad / "model.json").read_text())
    manifest["architecture"]["args"]["channels"] = [4, 8, 32]
    (bad / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="do not fit the architecture"):
        load_layers_model(bad)


def test_bundled_model_is_the_default_and_says_it_is_synthetic():
    model = load_layers_model()
    assert model.label_values == (0, 1, 2, 3)
    assert model.is_synthetic
    assert "synthetic" in model.manifest["notice"] and "--init" in model.manifest["notice"]
    size = sum(p.stat().st_size for p in model.path.iterdir() if p.is_file())
    assert size < 10 * 2**20
    # scored on held-out phantom sections of every appearance family (layers_families.py)
    held_out = model.manifest["scores"]["held_out"]
    assert set(held_out) >= {"stratum_corneum", "epidermis", "dermis", "mean_dice", "dej_error_um"}
    assert set(model.manifest["scores"]["held_out_by_family"]) == {
        "standard",
        "dark-sc-low-contrast",
        "smooth-blurred-coarse",
        "artefact-heavy",
    }
    assert model.manifest["uncertainty"]["weights_sha256"] == model.weights_sha256
