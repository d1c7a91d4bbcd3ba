"""napari writer: a labels layer as an OME-TIFF mask with its spacing (µm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_labels"]


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: skin-layer labels (0–3) → OME-TIFF with ``PhysicalSize``.

    The spacing is the layer's ``scale`` (µm); a 2-D mask is written as a vertical
    section (``'zx'``), a 3-D one as a volume.

    Raises
    ------
    InputError
        Values outside 0–3.
    """
    from skinoct.io import validate_labels, write_image

    mask = validate_labels(np.asarray(data))
    scale = tuple(float(s) for s in (meta.get("scale") or (1.0,) * mask.ndim))
    axes = "zyx" if mask.ndim == 3 else "zx"
    target = Path(path)
    if not target.name.lower().endswith((".tif", ".tiff")):
        target = target.with_name(target.name + ".ome.tif")
    write_image(target, mask, spacing_um=scale[-mask.ndim :], axes=axes)
    return [str(target)]
