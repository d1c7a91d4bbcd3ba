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
