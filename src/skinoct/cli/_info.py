"""``skinoct info`` and ``skinoct inspect``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape

from skinoct._version import __version__
from skinoct.cli._common import console, parse_spacing, run_batch

_AXES_NAMES = {"zx": "vertical section", "yx": "en-face image", "zyx": "volume"}


def info() -> None:
    """Versions, compute device and thread count."""
    import importlib.metadata as md

    import torch

    rows = {"skinoct": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "torchvision", "monai", "onnxruntime", "tifffile"):
        try:
            rows[name] = md.version(name)
        except md.PackageNotFoundError:
            rows[name] = "not installed"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device += f" ({torch.cuda.get_device_name(0)})"
    rows["torch device"] = device
    rows["torch threads"] = str(torch.get_num_threads())
    for key, value in rows.items():
        console.print(f"{key:>14}  {value}", highlight=False, markup=False)


def inspect(
    files: list[Path] = typer.Argument(
        ..., help="Images, volumes, masks, slice folders or OME-Zarr images."
    ),
    spacing: str | None = typer.Option(
        None, "--spacing", help="Override the spacing in µm, one value per axis (e.g. 1 1 1)."
    ),
    axes: str | None = typer.Option(None, "--axes", help="Interpret 2-D files as 'zx' or 'yx'."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> int:
    """Show what skinoct sees in each file: kind, shape, dtype, spacing, intensities."""
    from skinoct.io import read_image

    override = parse_spacing(spacing)

    def one(path: Path) -> None:
        image = read_image(path, spacing_um=override, axes=axes)
        data = image.data
        sample = np.asarray(data[:: max(1, data.shape[0] // 64)])
        values = np.unique(sample) if data.dtype.kind in "ui" else np.array([])
        looks_like_mask = values.size > 0 and values.size <= 4 and values.max() <= 3
        record = {
            "file": str(path),
            "kind": _AXES_NAMES[image.axes],
            "axes": image.axes,
            "shape": list(image.shape),
            "dtype": str(data.dtype),
            "spacing_um": list(image.spacing_um),
            "spacing_source": image.spacing_source,
            "extent_um": [round(v, 3) for v in image.extent_um],
            "min": float(np.min(data)),
            "max": float(np.max(data)),
            "p0.5": float(np.percentile(sample, 0.5)),
            "p99.5": float(np.percentile(sample, 99.5)),
            "looks_like_label_mask": bool(looks_like_mask),
        }
        if hasattr(data, "chunks"):  # OME-Zarr, read lazily (skinoct.io.LazyArray)
            record["storage"] = f"OME-Zarr, chunks {list(data.chunks)}"
        if as_json:
            typer.echo(json.dumps(record))
            return
        console.print(f"[bold]{escape(str(path))}[/bold]", highlight=False)
        for key, value in record.items():
            if key != "file":
                console.print(f"  {key:<22} {value}", highlight=False, markup=False)

    return run_batch(files, one, description="inspecting")
