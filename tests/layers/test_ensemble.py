"""Fold ensembles (skinoct.layers._ensemble)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _layers_synthetic import random_model, synthetic_section

from skinoct.errors import ModelError
from skinoct.layers import segment_section
from skinoct.layers._ensemble import EnsembleLayersModel, load_layers_ensemble


def test_ensemble_softmax_is_the_mean_of_the_members_probabilities():
    a, b = random_model(0), random_model(1)
    ens = EnsembleLayersModel([a, b])
    x = torch.randn(2, 1, 32, 48)
    with torch.inference_mode():
        expected = (torch.softmax(a.network()(x), 1) + torch.softmax(b.network()(x), 1)) / 2
        got = torch.softmax(ens.network()(x), 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert ens.manifest["ensemble"]["n_members"] == 2
    assert ens.weights_sha256 and ens.weights_sha256 != a.weights_sha256


def test_ensemble_segments_through_the_normal_inference_path():
    image, _ = synthetic_section(np.random.default_rng(0))
    ens = EnsembleLayersModel([random_model(0), random_model(1)])
    result = segment_section(image, ens, spacing_um=(1.0, 1.0), tta=True, device="cpu")
    assert result.labels.shape == image.shape
    labels = result.labels.astype(int)
    assert (np.diff(labels, axis=0) >= 0).all()  # ordered decoding applies to it too
    assert np.isfinite(result.entropy).all()


def test_members_must_agree():
    with pytest.raises(ModelError, match="at least 2"):
        EnsembleLayersModel([random_model(0)])
    other = random_model(1, label_values=(0, 2, 3))
    with pytest.raises(ModelError, match="differ"):
        EnsembleLayersModel([random_model(0), other])


def test_load_ensemble_reads_the_fold_models(trained, tmp_path):
    result, _ = trained
    ens = load_layers_ensemble(result.model_dir)
    assert len(ens.members) == 2  # TINY_CONFIG: 2 folds
    assert ens.label_values == result.model.label_values
    with pytest.raises(ModelError, match="no fold models"):
        load_layers_ensemble(tmp_path)


def test_segment_cli_with_ensemble(run_cli, trained, tmp_path):
    from skinoct.io import read_mask, write_image

    result, _ = trained
    image, _ = synthetic_section(np.random.default_rng(3))
    src = write_image(tmp_path / "sec.ome.tif", image, spacing_um=(1.0, 1.0), axes="zx")
    out = tmp_path / "out"
    code, _, err = run_cli(
        "layers", "segment", src, "--out", out, "--model", result.model_dir, "--ensemble"
    )
    assert code == 0, err
    mask = read_mask(out / "sec_mask.tif", axes="zx").data.astype(int)
    assert (np.diff(mask, axis=0) >= 0).all()
    code, _, err = run_cli("layers", "segment", src, "--out", out, "--ensemble")
    assert code == 2 and "--ensemble needs --model" in err


def test_ensemble_runs_on_the_onnx_engine_like_torch():
    # an ensemble has no saved weights file: its ONNX export is keyed by a digest of the
    # members' state dicts, which hold 0-d tensors (BatchNorm's num_batches_tracked)
    pytest.importorskip("onnxruntime")
    ens = EnsembleLayersModel([random_model(0), random_model(1)])
    image, _ = synthetic_section(np.random.default_rng(3))
    a = segment_section(image, ens, spacing_um=(1.0, 1.0), engine="torch", device="cpu")
    b = segment_section(image, ens, spacing_um=(1.0, 1.0), engine="onnx")
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
