"""Tiny tile datasets and models for the matrix tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_dataset(root, *, n_subjects=6, per_subject=4, size=40, raters=False, seed=0):
    """A labelled tile dataset on disk: brightness and stripe density encode the grade."""
    from skinoct.matrix import write_tile_png

    rng = np.random.default_rng(seed)
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for s in range(n_subjects):
        for k in range(per_subject):
            grade = (s + k) % 4 + 1
            base = 40 + 40 * grade + 30 * np.sin(xx * grade * 0.4 + yy * 0.1)
            tile = np.clip(base[None] + rng.normal(0, 8, (3, size, size)), 0, 255).astype(np.uint8)
            tile_id = f"s{s}_t{k}"
            write_tile_png(root / "tiles" / f"{tile_id}.png", tile)
            rows.append(
                dict(
                    tile_id=tile_id,
                    volume_id=f"v{s}",
                    subject=f"s{s}",
                    depth_um=5.0 * k,
                    row=0,
                    col=k % 3,
                )
            )
            if raters:
                votes = [grade] * 4 + [max(1, grade - 1), min(4, grade + 1)]
                labels.append(
                    dict(tile_id=tile_id, **{f"rater_{i + 1}": v for i, v in enumerate(votes)})
                )
            else:
                labels.append(dict(tile_id=tile_id, grade=grade))
    pd.DataFrame(rows).to_csv(root / "tiles.csv", index=False)
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)
    return root


def calibrated_net(*, head="keras2", size=64, seed=0):
    """A random MatrixNet whose batch-norm statistics match its activations.

    A freshly initialised MobileNetV3 in eval mode maps every input to almost the
    same output (running variance 1 vs tiny activations); one pass in train mode
    with cumulative BN averaging gives input-dependent outputs for parity tests.
    """
    import torch

    from skinoct.matrix import MatrixNet

    torch.manual_seed(seed)
    net = MatrixNet(head=head)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
            module.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 3, size, size))
    return net.eval()


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path, monkeypatch):
    """Keep exported ONNX files of the bundled model out of the user's cache."""
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def make_tile_dataset():
    """``make_dataset(root, **options)``: write a tiny labelled tile dataset."""
    return make_dataset


@pytest.fixture
def make_calibrated_net():
    """``calibrated_net(head=..., size=...)``: a random net with input-dependent output."""
    return calibrated_net


@pytest.fixture
def tile_dataset(tmp_path):
    return make_dataset(tmp_path / "data")


@pytest.fixture(scope="module")
def trained_model_dir(tmp_path_factory):
    """A model directory from a two-epoch run on 32-px tiles (shared by a module)."""
    from skinoct.matrix import TrainConfig, train_matrix

    root = tmp_path_factory.mktemp("matrix")
    data = make_dataset(root / "data")
    config = TrainConfig(input_size=32, augment=2, batch_size=4, epochs=2, seed=1)
    train_matrix(data, root / "model", config=config, log=lambda _: None)
    return root / "model"
