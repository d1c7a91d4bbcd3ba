"""Tiny synthetic vertical sections with known layers (flat or sinusoidal), for tests.

Air above a bright stratum corneum, a darker viable epidermis, a brighter textured
dermis below a sinusoidal dermo-epidermal junction, multiplicative speckle. Sizes in
pixels are small so networks train and run in a fraction of a second.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from skinoct.io import write_image
from skinoct.layers import LayersModel, NetworkSpec, TrainConfig


def synthetic_section(
    rng: np.random.Generator,
    shape: tuple[int, int] = (64, 96),
    *,
    surface: float = 10.0,
    sc: float = 6.0,
    epidermis: float = 18.0,
    amplitude: float = 4.0,
    wavelength: float = 40.0,
    noise: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image float32, labels uint8)`` of ``shape`` (z, x), boundaries in pixels."""
    nz, nx = shape
    x = np.arange(nx)
    phase = rng.uniform(0, 2 * np.pi)
    surf = surface + rng.uniform(-2, 2) + 0.03 * (x - nx / 2)
    scj = surf + sc
    dej = scj + epidermis + amplitude * np.sin(2 * np.pi * x / wavelength + phase)
    z = np.arange(nz)[:, None]
    labels = np.zeros(shape, np.uint8)
    labels[z >= surf] = 1
    labels[z >= scj] = 2
    labels[z >= dej] = 3
    level = np.array([0.05, 0.95, 0.35, 0.65], np.float32)
    image = level[labels]
    image = image + 0.1 * (labels == 3) * np.sin(z * 0.9 + x[None] * 0.4)
    image = image * rng.gamma(1 / noise**2, noise**2, size=shape) + rng.normal(0, 0.02, shape)
    return (image * 1000).astype(np.float32), labels


def write_dataset(
    root: Path,
    n: int = 6,
    *,
    subjects: int = 3,
    shape: tuple[int, int] = (64, 96),
    spacing_um: tuple[float, float] = (1.0, 1.0),
    seed: int = 0,
    labels: list[int] | None = None,
) -> Path:
    """Write ``n`` sections in the images/ + masks/ + index.csv layout.

    With ``labels`` (a partial label set, e.g. ``[0, 2, 3]``) the stratum corneum is
    merged into the epidermis and ``dataset.json`` declares the set.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        image, mask = synthetic_section(rng, shape)
        if labels is not None and 1 not in labels:
            mask = np.where(mask == 1, 2, mask).astype(np.uint8)
        sid = f"s{i:02d}"
        write_image(root / "images" / f"{sid}.ome.tif", image, spacing_um=spacing_um, axes="zx")
        write_image(root / "masks" / f"{sid}.ome.tif", mask, spacing_um=spacing_um, axes="zx")
        rows.append({"id": sid, "subject": f"subj{i % subjects}"})
    with open(root / "index.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "subject"])
        writer.writeheader()
        writer.writerows(rows)
    if labels is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


#: A 3-level UNet with a few hundred parameters per layer: trains in milliseconds.
TINY = NetworkSpec(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.2)

#: Two folds, two epochs, 32 px patches: a full train_layers run in about a second.
TINY_CONFIG = TrainConfig(
    folds=2,
    epochs=2,
    patience=2,
    batch_size=4,
    patch=(32, 32),
    patches_per_section=2,
    network=TINY,
    device="cpu",
    num_workers=0,
)


def random_model(seed: int = 0, *, label_values=(0, 1, 2, 3), spec: NetworkSpec = TINY):
    """An untrained model whose batch-norm statistics are not the identity."""
    import torch

    from skinoct.layers._network import build_network

    torch.manual_seed(seed)
    net = build_network(spec, len(label_values))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return LayersModel(spec, net.state_dict(), label_values=label_values, spacing_um=(1.0, 2.0))
