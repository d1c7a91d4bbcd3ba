"""Tiles from en-face images (no DEJ needed): :func:`enface_tiles`."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from skinoct.errors import InputError
from skinoct.io import Image
from skinoct.matrix._tiles import (
    _INDEX_COLUMNS,
    LAYOUTS,
    Layout,
    _layout_grid,
    _resize,
    _stem,
    _to_output,
)

__all__ = ["enface_tiles"]


def enface_tiles(
    image: Image,
    *,
    tile_size_um: float = 400.0,
    layout: Layout = "grid",
    n_tiles: int | None = None,
    out_size: int = 224,
    image_id: str | None = None,
    dtype: Literal["uint8", "float32"] = "uint8",
):
    """Tiles from an en-face image: a ``'yx'`` image, or a 3-slice stack (z−1, z, z+1).

    A single en-face slice has no neighbours in z: its grey levels are copied to
    all three channels (with a warning), which the model never saw in training.

    Returns
    -------
    tiles, index
        As :func:`extract_tiles` (``depth_um`` is NaN).
    """
    import pandas as pd

    if not isinstance(image, Image):
        raise InputError(f"enface_tiles needs an Image, got {type(image).__name__}")
    if image.axes == "yx":
        warnings.warn(
            f"{image.path or 'image'}: a single en-face slice; its grey levels fill all "
            "three channels (the model expects slices at z−1, z, z+1 µm)",
            stacklevel=2,
        )
        planes = np.repeat(np.asarray(image.data, dtype=np.float32)[None], 3, axis=0)
        dy, dx = image.spacing_um
    elif image.axes == "zyx" and image.shape[0] == 3:
        planes = np.asarray(image.data, dtype=np.float32)
        dy, dx = image.spacing_um[1:]
    else:
        raise InputError(
            f"en-face tiles need a 2-D en-face image or a 3-slice stack, got shape {image.shape} "
            f"({image.axes}); give a DEJ depth to tile a volume",
            path=image.path,
        )
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    tile_px = (round(tile_size_um / dy), round(tile_size_um / dx))
    ny, nx = planes.shape[1:]
    if tile_px[0] > ny or tile_px[1] > nx:
        raise InputError(
            f"the image ({ny * dy:g} × {nx * dx:g} µm) is smaller than a {tile_size_um:g} µm tile",
            path=image.path,
        )
    image_id = image_id or (_stem(image.path) if image.path is not None else "image")
    plan = _layout_grid((ny, nx), tile_px, layout, 0, n_tiles)
    cut, rows = [], []
    for r, c, y0, x0 in plan:
        cut.append(planes[:, y0 : y0 + tile_px[0], x0 : x0 + tile_px[1]])
        rows.append(
            {
                "tile_id": f"{image_id}_r{r}_c{c}",
                "volume_id": image_id,
                "subject": image_id,
                "depth_um": np.nan,
                "row": r,
                "col": c,
                "y_um": y0 * dy,
                "x_um": x0 * dx,
                "height_px": tile_px[0],
                "width_px": tile_px[1],
                "n_tiles": len(plan),
            }
        )
    tiles, used_range = _to_output(_resize(np.stack(cut), int(out_size)), dtype, None)
    index = pd.DataFrame(rows, columns=_INDEX_COLUMNS)
    index.attrs.update(dropped=0, intensity_range=used_range, spacing_um=image.spacing_um)
    return tiles, index
