"""Fixtures of the layer-segmentation tests: tiny networks, tiny synthetic datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _layers_synthetic import TINY_CONFIG, random_model, write_dataset

from skinoct.layers import save_layers_model


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path, monkeypatch):
    """Keep exported ONNX files of the bundled model out of the user's cache."""
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved model directory holding random weights (4 classes, 1 x 2 µm grid)."""
    out = tmp_path_factory.mktemp("tiny_model")
    return save_layers_model(out, random_model(0), training={"note": "random test weights"})


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    """Six 64 x 96 synthetic sections of three subjects (images/, masks/, index.csv)."""
    return write_dataset(tmp_path_factory.mktemp("dataset"), n=6, subjects=3)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, dataset_dir):
    """One tiny train_layers run: (TrainResult, events)."""
    from skinoct.layers import train_layers

    events: list[dict] = []
    out = tmp_path_factory.mktemp("trained") / "model"
    result = train_layers(dataset_dir, out, TINY_CONFIG, callback=events.append)
    return result, events


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A fresh LayersModel of ``tiny_model_dir`` (tests may change its attributes)."""
    from skinoct.layers import load_layers_model

    return load_layers_model(tiny_model_dir)
