"""Fixtures of the model-layer tests: tiny saved models of both tasks."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path, monkeypatch):
    """Keep ONNX exports out of the user's cache."""
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def layers_model_dir(tmp_path_factory):
    """A saved layer model with random weights (tiny UNet, 4 classes)."""
    import torch

    from skinoct.layers import LayersModel, NetworkSpec, save_layers_model
    from skinoct.layers._network import build_network

    spec = NetworkSpec(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.2)
    torch.manual_seed(0)
    net = build_network(spec, 4)
    model = LayersModel(spec, net.state_dict(), label_values=(0, 1, 2, 3), spacing_um=(1.0, 2.0))
    out = tmp_path_factory.mktemp("layers_model")
    return save_layers_model(out, model, training={"synthetic_data": True})


@pytest.fixture(scope="session")
def matrix_model_dir(tmp_path_factory):
    """A saved grading model with random weights (32 px input)."""
    import torch

    from skinoct.matrix import MatrixNet, Preprocessing, save_matrix_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("matrix_model")
    return save_matrix_model(
        out,
        MatrixNet(),
        preprocessing=Preprocessing(input_size=32),
        provenance={"synthetic_data": False},
    )
