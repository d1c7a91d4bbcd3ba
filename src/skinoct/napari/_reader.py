"""napari reader: skinoct inputs and the output folders of ``layers segment``, ``analyze``
and ``study run``.

Inputs (OME-TIFF / ImageJ TIFF / PNG / npy / npz / slice folders / OME-Zarr) are read
through :mod:`skinoct.io` and shown with ``scale = spacing_um``. Output folders give
the image, the labels (seed 000's Figure 1 colours), the entropy (``plasma``), the
boundaries as coloured paths or the DEJ surface, and the metrics in each layer's
``metadata``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.napari._layers import (
    boundary_layer,
    entropy_layer,
    image_layer,
    labels_layer,
    surface_layer,
    uncertain_layer,
)

__all__ = ["get_reader", "read_path"]

_SEGMENT_METRICS = ".metrics.json"
_MAPS_2D = ("epidermis_thickness_um", "stratum_corneum_thickness_um", "dej_entropy")


def _kind(path: Path) -> str | None:
    """What a path holds for skinoct, or None when skinoct cannot read it."""
    from skinoct.io import IMAGE_SUFFIXES, is_zarr

    if path.is_file():
        return "image" if path.name.lower().endswith(IMAGE_SUFFIXES) else None
    if not path.is_dir():
        return None
    if is_zarr(path):
        return "zarr"
    if (path / "analysis.json").is_file():
        return "analysis"
    if any(path.glob(f"*{_SEGMENT_METRICS}")):
        return "segment"
    if (path / "subjects").is_dir() and any((path / "subjects").glob("*/analysis.json")):
        return "study"
    if any(p.suffix.lower() in (".tif", ".tiff", ".png") for p in path.iterdir()):
        return "image"  # a folder of en-face slices
    return None


def get_reader(path: str | list[str]):
    """npe2 ``get_reader`` hook: a reader function for paths skinoct understands, else None."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or any(_kind(Path(p)) is None for p in paths):
        return None
    return read_path


def read_path(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    """Read one or more paths into napari layer data."""
    paths = [path] if isinstance(path, str) else list(path)
    out: list = []
    for p in map(Path, paths):
        kind = _kind(p)
        if kind in ("image", "zarr"):
            out.extend(_read_input(p))
        elif kind == "analysis":
            out.extend(read_analysis(p))
        elif kind == "segment":
            out.extend(read_segment_folder(p))
        elif kind == "study":
            for sub in sorted((p / "subjects").glob("*/analysis.json")):
                out.extend(read_analysis(sub.parent, prefix=f"{sub.parent.name}: "))
    return out


def _read_input(path: Path) -> list:
    from skinoct.io import LazyArray, read_image, read_ome_zarr_labels

    image = read_image(path, mmap=True)
    data = image.data
    if isinstance(data, LazyArray):
        data = _as_dask(data)
    meta = {"skinoct_path": str(path), "spacing_um": list(image.spacing_um), "axes": image.axes,
            "spacing_source": image.spacing_source}  # fmt: skip
    layers = [image_layer(data, image.spacing_um, name=_stem(path), metadata=meta)]
    if image.path is not None and Path(image.path).is_dir() and (path / "labels").is_dir():
        mask = read_ome_zarr_labels(path)
        if mask is not None:
            layers.append(labels_layer(mask.data, mask.spacing_um, name=f"{_stem(path)} layers"))
    return layers


def _as_dask(lazy):
    """A dask array over a :class:`~skinoct.io.LazyArray` (napari slices it lazily)."""
    try:
        import dask.array as da
    except ImportError:  # without dask napari loads the volume
        return np.asarray(lazy)
    return da.from_array(lazy, chunks=lazy.chunks, asarray=True, fancy=False)


def _stem(path: Path) -> str:
    from skinoct.layers import image_stem

    return image_stem(path).removesuffix(".ome").removesuffix(".zarr").removesuffix(".ome")


def read_segment_folder(folder: Path) -> list:
    """Layers of every section of a ``skinoct layers segment`` output folder."""
    from skinoct.io import read_image, read_mask

    out = []
    for meta_path in sorted(folder.glob(f"*{_SEGMENT_METRICS}")):
        stem = meta_path.name[: -len(_SEGMENT_METRICS)]
        record = json.loads(meta_path.read_text(encoding="utf-8"))
        metrics = record.get("metrics") or {}
        source = record.get("image")
        mask = read_mask(folder / f"{stem}_mask.tif", axes="zx")
        spacing = mask.spacing_um
        meta = {"skinoct_metrics": metrics, "skinoct_record": record, "skinoct_stem": stem}
        if source and Path(source).is_file():
            image = read_image(source, axes="zx", spacing_um=spacing)
            out.append(image_layer(image.data, spacing, name=stem, metadata=meta))
        out.append(labels_layer(mask.data, spacing, name=f"{stem} layers", metadata=meta))
        entropy_file = folder / f"{stem}_entropy.tif"
        if entropy_file.is_file():
            entropy = read_image(entropy_file, axes="zx", spacing_um=spacing).data
            out.append(entropy_layer(entropy, spacing, name=f"{stem} entropy"))
        out.extend(_section_shapes(mask.data, spacing, metrics, stem))
    return out


def _section_shapes(mask, spacing, metrics: dict, stem: str) -> list:
    from skinoct.errors import InputError
    from skinoct.morphometry import extract_boundaries

    try:
        b = extract_boundaries(mask, spacing)
    except InputError:  # no skin in the mask
        return []
    bounds = {k: b[k] for k in ("surface", "sc_junction", "dej")}
    layers = [boundary_layer(bounds, spacing, name=f"{stem} boundaries")]
    segments = metrics.get("dej_uncertain_segments") or []
    if segments:
        layers.append(uncertain_layer(segments, b.dej, spacing, name=f"{stem} uncertain DEJ"))
    return layers


def read_analysis(folder: Path, *, prefix: str = "") -> list:
    """Layers of one ``skinoct analyze`` output (or one subject of ``study run``)."""
    from skinoct.io import read_volume

    analysis = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
    spacing = tuple(analysis["input"]["spacing_um"])
    meta = {
        "skinoct_score": analysis.get("score"),
        "skinoct_metrics": analysis.get("metrics"),
        "skinoct_profile": analysis.get("profile"),
        "skinoct_flags": analysis.get("flags"),
    }
    out = []
    source = analysis["input"].get("path")
    if source and Path(source).exists():
        volume = read_volume(source, mmap=True, spacing_um=spacing)
        data = volume.data if isinstance(volume.data, np.ndarray) else _as_dask(volume.data)
        out.append(image_layer(data, spacing, name=f"{prefix}{Path(source).name}", metadata=meta))
    maps = folder / "maps"
    if (maps / "dej_um.npy").is_file():
        dej = np.load(maps / "dej_um.npy", allow_pickle=False)
        surface = surface_layer(dej, spacing, name=f"{prefix}DEJ surface")
        surface[1]["metadata"] = meta
        out.append(surface)
    for name in _MAPS_2D:
        file = maps / f"{name}.npy"
        if file.is_file():
            data = np.load(file, allow_pickle=False)
            layer = image_layer(data, spacing[1:], name=f"{prefix}{name}", metadata=meta)
            layer[1].update(colormap="plasma" if name == "dej_entropy" else "viridis",
                            visible=False)  # fmt: skip
            out.append(layer)
    return out
