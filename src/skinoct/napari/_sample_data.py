"""napari sample data: phantom section, volume and cohort, rendered on demand (seeded).

Synthetic LC-OCT-like data from :mod:`skinoct.phantom` with exact ground truth; not
real skin.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from skinoct.napari._layers import boundary_layer, image_layer, labels_layer

__all__ = ["phantom_cohort", "phantom_section", "phantom_volume"]

SEED = 13


def phantom_section() -> list:
    """A 240 × 600 µm vertical section at 1 µm, with its true labels and boundaries."""
    from skinoct.phantom import SectionParams, render_section

    section = render_section(SectionParams(depth_um=240, width_um=600), seed=SEED)
    spacing = section.spacing_um
    meta = {"skinoct_phantom": "section", "seed": SEED}
    return [
        image_layer(section.image, spacing, name="phantom section", metadata=meta),
        labels_layer(section.labels, spacing, name="phantom section truth"),
        boundary_layer(section.boundaries_um, spacing, name="phantom section boundaries"),
    ]


def phantom_volume() -> list:
    """A small phantom volume (240 × 100 × 300 µm) with its true labels."""
    from skinoct.phantom import VolumeParams, render_volume

    volume = render_volume(
        VolumeParams(size_um=(240, 100, 300), spacing_um=(1.0, 2.0, 2.0)), seed=SEED
    )
    meta = {"skinoct_phantom": "volume", "seed": SEED, "mean_q": float(volume.mean_q)}
    return [
        image_layer(volume.volume, volume.spacing_um, name="phantom volume", metadata=meta),
        labels_layer(volume.labels, volume.spacing_um, name="phantom volume truth"),
    ]


def phantom_cohort(out_dir: str | Path | None = None) -> list:
    """Two subjects per group of a small phantom cohort, one image layer per subject.

    The cohort is written to ``out_dir`` (a temporary folder by default; its
    ``manifest.csv`` is in each layer's metadata, ready for ``skinoct study run``).
    """
    from skinoct.io import read_volume
    from skinoct.phantom import VolumeParams, render_cohort

    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="skinoct_"))
    params = VolumeParams(size_um=(120, 60, 200), spacing_um=(1.0, 3.0, 3.0))
    render_cohort(out, subjects_per_group=2, volume_params=params, seed=SEED)
    layers = []
    for file in sorted((out / "volumes").glob("*.ome.tif")):
        image = read_volume(file)
        meta = {"skinoct_phantom": "cohort", "manifest": str(out / "manifest.csv")}
        name = file.name.removesuffix(".ome.tif")
        layers.append(image_layer(image.data, image.spacing_um, name=name, metadata=meta))
    return layers
