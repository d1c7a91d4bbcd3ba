"""skinoct results as napari layer data, ``(data, kwargs, layer_type)``; no Qt here.

Colours follow seed 000's Figure 1: blue = skin surface, red = stratum corneum /
epidermis junction, green = DEJ. Each label takes the colour of the boundary above it
(stratum corneum blue, epidermis red, dermis green), half transparent; entropy uses
``plasma`` (seed 000's Figure 2: violet low, yellow high).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "BOUNDARY_HEX",
    "LABEL_HEX",
    "boundary_layer",
    "entropy_layer",
    "image_layer",
    "labels_layer",
    "surface_layer",
    "uncertain_layer",
]

LayerData = tuple[Any, dict[str, Any], str]

#: Boundary colours of seed 000's Figure 1 (as in :data:`skinoct.layers.BOUNDARY_COLORS`).
BOUNDARY_HEX = {"surface": "#1e6eff", "sc_junction": "#ff2828", "dej": "#1ee63c"}
#: Label colours: the colour of the boundary above the layer.
LABEL_HEX = {1: BOUNDARY_HEX["surface"], 2: BOUNDARY_HEX["sc_junction"], 3: BOUNDARY_HEX["dej"]}
#: Names of the labels layer's values.
LABEL_TEXT = {0: "air / gel", 1: "stratum corneum", 2: "viable epidermis", 3: "dermis"}


def image_layer(data, spacing_um, *, name: str, metadata: dict | None = None) -> LayerData:
    """A grey image layer with its physical scale (µm)."""
    kwargs = {"name": name, "scale": tuple(float(s) for s in spacing_um), "colormap": "gray"}
    if metadata:
        kwargs["metadata"] = metadata
    return data, kwargs, "image"


def labels_layer(mask, spacing_um, *, name: str, metadata: dict | None = None) -> LayerData:
    """Skin-layer labels (0–3) coloured as seed 000's Figure 1, half transparent."""
    colormap = {None: "transparent", 0: "transparent", **LABEL_HEX}
    kwargs = {
        "name": name,
        "scale": tuple(float(s) for s in spacing_um),
        "opacity": 0.35,
        "colormap": colormap,
        "metadata": {"skinoct_labels": LABEL_TEXT, **(metadata or {})},
    }
    return np.asarray(mask, dtype=np.uint8), kwargs, "labels"


def entropy_layer(entropy, spacing_um, *, name: str) -> LayerData:
    """Normalised softmax entropy (0 certain – 1 uniform) with the ``plasma`` colormap."""
    kwargs = {
        "name": name,
        "scale": tuple(float(s) for s in spacing_um),
        "colormap": "plasma",
        "contrast_limits": (0.0, 1.0),
        "opacity": 0.6,
        "blending": "additive",
        "visible": False,
    }
    return np.asarray(entropy, dtype=np.float32), kwargs, "image"


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges ``[start, stop)`` of consecutive finite values."""
    finite = np.isfinite(values)
    edges = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def boundary_layer(boundaries, spacing_um, *, name: str = "boundaries") -> LayerData:
    """The surface, SC junction and DEJ of a section as coloured paths (shapes layer).

    ``boundaries`` maps ``'surface'``, ``'sc_junction'``, ``'dej'`` to depths in µm per
    column (NaN where absent); each finite stretch becomes one path.
    """
    dz, dx = (float(s) for s in spacing_um)
    paths, colors, kinds = [], [], []
    for kind, hex_color in BOUNDARY_HEX.items():
        depth = np.asarray(boundaries[kind], dtype=float)
        for start, stop in _runs(depth):
            if stop - start < 2:
                continue
            cols = np.arange(start, stop, dtype=float)
            paths.append(np.column_stack([depth[start:stop] / dz, cols]))
            colors.append(hex_color)
            kinds.append(kind)
    kwargs = {
        "name": name,
        "scale": (dz, dx),
        "shape_type": "path",
        "edge_color": colors or "white",
        "edge_width": 1.5,
        "features": {"boundary": kinds},
    }
    return paths, kwargs, "shapes"


def uncertain_layer(segments_um, dej_um, spacing_um, *, name: str = "uncertain DEJ") -> LayerData:
    """Rectangles (yellow outline) around the uncertain stretches of the DEJ.

    ``segments_um`` is ``[[x_start_um, x_end_um], …]``
    (:attr:`SectionMetrics.dej_uncertain_segments`); each box spans the DEJ's depth
    range over the stretch ± 8 µm.
    """
    dz, dx = (float(s) for s in spacing_um)
    dej = np.asarray(dej_um, dtype=float)
    boxes = []
    for x0, x1 in segments_um or []:
        c0 = max(0, math.floor(x0 / dx))
        c1 = min(dej.size, math.ceil(x1 / dx) + 1)
        depth = dej[c0:c1]
        if not np.isfinite(depth).any():
            continue
        top = (np.nanmin(depth) - 8.0) / dz
        bottom = (np.nanmax(depth) + 8.0) / dz
        boxes.append(np.array([[top, c0], [bottom, c1 - 1]], dtype=float))
    kwargs = {
        "name": name,
        "scale": (dz, dx),
        "shape_type": "rectangle",
        "edge_color": "#ffd700",
        "face_color": "transparent",
        "edge_width": 2.0,
    }
    return boxes, kwargs, "shapes"


def surface_layer(depth_um, spacing_um, *, name: str = "DEJ surface") -> LayerData:
    """A (y, x) depth map in µm as a triangulated surface in a ``'zyx'`` volume's frame.

    Vertices are in pixel units of the volume (``z = depth / dz``) with the volume's
    scale; grid cells with a NaN corner are left out. Values are the depths in µm.
    """
    dz, dy, dx = (float(s) for s in spacing_um)
    depth = np.asarray(depth_um, dtype=float)
    ny, nx = depth.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    vertices = np.column_stack([np.nan_to_num(depth.ravel()) / dz, yy.ravel(), xx.ravel()])
    index = np.arange(ny * nx).reshape(ny, nx)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, c]), np.column_stack([b, d, c])])
    finite = np.isfinite(depth.ravel())
    faces = faces[finite[faces].all(axis=1)]
    values = np.nan_to_num(depth.ravel(), nan=float(np.nanmean(depth)) if finite.any() else 0.0)
    kwargs = {"name": name, "scale": (dz, dy, dx), "colormap": "viridis", "opacity": 0.8}
    return (vertices.astype(np.float32), faces.astype(np.int32), values), kwargs, "surface"
