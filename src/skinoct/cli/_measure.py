"""``skinoct layers measure``: morphometry of label masks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer
from rich.markup import escape

from skinoct.cli._common import console, parse_spacing, run_batch
from skinoct.errors import InputError

_IMAGE_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".png", ".npy", ".npz")
# An entropy map is data: 'layers segment' writes <stem>_entropy.tif (the values) beside
# <stem>_entropy.png (a colour picture of them), so data formats are preferred.
_ENTROPY_PREFERENCE = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".npy", ".npz", ".png")


def measure(
    masks: list[Path] = typer.Argument(
        ..., help="Label masks (0 air, 1 SC, 2 epidermis, 3 dermis): sections or volumes."
    ),
    spacing: str | None = typer.Option(
        None,
        "--spacing",
        help="Pixel size in µm, depth first: DZ DX (section) or DZ DY DX (volume). "
        "Overrides the file's metadata.",
    ),
    entropy: Path | None = typer.Option(
        None,
        "--entropy",
        help="Normalised entropy map (0–1) of the mask's shape; for several masks a folder "
        "holding one map per mask, named like it (or <stem>_entropy for <stem>_mask, as "
        "written by 'skinoct layers segment').",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write <name>.metrics.json per mask and metrics.csv here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON (one per line)."),
    normal: bool = typer.Option(
        False, "--normal", help="Thickness along the local surface normal (tilted skin)."
    ),
    prominence: float = typer.Option(
        5.0, "--prominence", help="Minimum dermal papilla prominence in µm.", min=0.0
    ),
    smoothing: float | None = typer.Option(
        None,
        "--smoothing",
        help="Boundary smoothing σ in µm (default 2 µm, or 2 pixels if coarser).",
        min=0.0,
    ),
    figures: bool = typer.Option(
        False, "--figures", help="With --out: also write thickness profile / map figures."
    ),
    entropy_threshold: float | None = typer.Option(
        None,
        "--entropy-threshold",
        help="DEJ entropy (0-1) above which a DEJ stretch is uncertain (default: the bundled "
        "model's calibrated threshold; 'layers segment' records its model's in metrics.json).",
        min=0.0,
        max=1.0,
    ),
    entropy_band_um: float | None = typer.Option(
        None,
        "--entropy-band-um",
        help="Half-height in µm of the band around the DEJ the entropy is averaged over "
        "(default: the band the bundled model's threshold was calibrated at; 'layers "
        "segment' records its model's in metrics.json).",
        min=0.0,
    ),
    min_segment_um: float | None = typer.Option(
        None,
        "--min-segment-um",
        help="Shortest DEJ stretch (µm) flagged uncertain (default: the length the bundled "
        "model's threshold was calibrated at).",
        min=0.0,
    ),
) -> int:
    """Layer thicknesses, DEJ undulation, dermal papillae and DEJ uncertainty of masks."""
    from skinoct.io import read_mask

    if figures and out is None:
        raise InputError("--figures needs --out DIR")
    override = parse_spacing(spacing)
    rows: list[dict] = []
    names: dict[str, Path] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> None:
        from skinoct.morphometry import flatten_metrics, measure_section, measure_volume

        mask = read_mask(path, spacing_um=override)
        if mask.axes == "yx":
            raise InputError("is an en-face image; expected a vertical section (z, x) or a "
                             "volume (z, y, x) mask", path=path)  # fmt: skip
        ent = _read_entropy(entropy, path, len(masks)) if entropy is not None else None
        options = {"normal": normal, "papilla_prominence_um": prominence, "smoothing_um": smoothing,
                   "entropy_threshold": entropy_threshold, "entropy_band_um": entropy_band_um,
                   "min_segment_um": min_segment_um}  # fmt: skip
        try:
            if mask.axes == "zyx":
                metrics = measure_volume(mask.data, mask.spacing_um, entropy=ent, **options)
            else:
                metrics = measure_section(mask.data, mask.spacing_um, entropy=ent, **options)
        except InputError as exc:
            if exc.path is None:
                raise InputError(exc.reason, path=path) from exc
            raise
        record = metrics.to_dict()
        name = _name(path)
        if out is not None and names.setdefault(name, path) != path:
            raise InputError(f"output name {name!r} is already used by {names[name]}", path=path)
        if out is not None:
            from skinoct.io import write_json

            write_json(out / f"{name}.metrics.json", record)
            if figures:
                from skinoct.morphometry.figures import save_figures

                save_figures(metrics, out, name, mask=None if mask.axes == "zyx" else mask.data)
            rows.append({"file": str(path), "name": name, **flatten_metrics(record)})
        if as_json:
            typer.echo(json.dumps({"file": str(path), **record}) if len(masks) > 1
                       else json.dumps(record))  # fmt: skip
        elif out is None:
            _print_summary(path, record)

    code = run_batch(masks, one, description="measuring")
    if out is not None and rows:
        _write_csv(out / "metrics.csv", rows)
    return code


def _name(path: Path) -> str:
    name = path.name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in _IMAGE_SUFFIXES if name.endswith(s)), path.suffix.lower())


def _read_entropy(entropy: Path, mask_path: Path, n_masks: int):
    from skinoct.io import SpacingWarning, read_image

    if entropy.is_dir():
        name = _name(mask_path)
        # same name in another folder, or the 'skinoct layers segment' pair
        # <stem>_mask.tif / <stem>_entropy.tif
        wanted = {name, name.removesuffix("_mask") + "_entropy"}
        matches = sorted(
            (
                p
                for p in entropy.iterdir()
                if _name(p) in wanted and p.resolve() != mask_path.resolve()
                and _suffix(p) in _ENTROPY_PREFERENCE
            ),
            key=lambda p: (_ENTROPY_PREFERENCE.index(_suffix(p)), p.name),
        )  # fmt: skip
        if not matches:
            raise InputError(
                f"no entropy map named {' or '.join(sorted(wanted))} in {entropy}",
                path=mask_path,
            )
        source = matches[0]
    elif n_masks > 1:
        raise InputError("with several masks, --entropy must be a folder of maps named like them")
    else:
        source = entropy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpacingWarning)  # the mask's spacing is the one used
        image = read_image(source)
    return image.data


def _print_summary(path: Path, record: dict) -> None:
    console.print(f"[bold]{escape(str(path))}[/bold]", highlight=False)
    for key, value in record.items():
        if isinstance(value, dict) and "mean" in value:
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        elif isinstance(value, dict):
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        else:
            text = _fmt(value)
        console.print(f"  {key:<32} {text}", highlight=False, markup=False)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    from skinoct.io import atomic_path

    frame = pd.DataFrame(rows)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
