"""``skinoct matrix``: dermal-matrix quality grading (seed 002)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from skinoct.cli._common import console, err_console, parse_spacing, progress, run_batch
from skinoct.errors import InputError

app = typer.Typer(
    help="Dermal-matrix quality grading (grades 1–4) on en-face LC-OCT tiles.",
    no_args_is_help=True,
)

_MODEL_HELP = "Model directory (default: the bundled model, trained on synthetic phantoms only)."
_DEJ_HELP = "DEJ depth below the top of the volume: a number of µm, or a .npy/.npz/.tif (y, x) map."


def _say(line: str) -> None:
    err_console.print(line, highlight=False, markup=False)


def _provenance_path(out: Path) -> Path:
    """The provenance sidecar of a predictions CSV: ``pred.csv`` → ``pred.provenance.json``."""
    return out.with_name(
        f"{out.stem if out.suffix.lower() == '.csv' else out.name}.provenance.json"
    )


def _notice(model) -> None:
    text = model.manifest.get("notice")
    if text:
        err_console.print(f"[yellow]note:[/yellow] {escape(str(text))}", highlight=False)


@app.command("tiles")
def tiles(
    volume: Path = typer.Argument(..., help="Volume (z × y × x): OME-TIFF, .npy/.npz, folder."),
    dej: str = typer.Option(..., "--dej", help=_DEJ_HELP),
    out: Path = typer.Option(..., "--out", help="Tile dataset folder (tiles/*.png + tiles.csv)."),
    start: float = typer.Option(0.0, "--start", help="First depth below the DEJ (µm)."),
    stop: float = typer.Option(70.0, "--stop", help="Depths stop before this (µm)."),
    step: float = typer.Option(
        5.0, "--step", help="Depth step (µm): 5 for datasets, 1 for profiles."
    ),
    layout: str = typer.Option("alternate", "--layout", help="alternate (3/2 tiles), row or grid."),
    n_tiles: int | None = typer.Option(None, "--n-tiles", help="Tiles per depth (row layout)."),
    tile_size: float = typer.Option(400.0, "--tile-size", help="Tile side in µm."),
    out_size: int = typer.Option(224, "--out-size", help="Tile side in pixels after resizing."),
    subject: str | None = typer.Option(None, "--subject", help="Subject id (default: volume id)."),
    volume_id: str | None = typer.Option(None, "--volume-id", help="Default: the file name."),
    spacing: str | None = typer.Option(None, "--spacing", help="Override spacing dz dy dx (µm)."),
    z_sampling: str = typer.Option(
        "auto", "--z-sampling", help="auto, nearest (whole slices) or linear (interpolate)."
    ),
) -> int:
    """Cut DEJ-relative 400 × 400 µm tiles (z−1, z, z+1 µm as RGB) out of a volume."""
    from skinoct.io import read_volume
    from skinoct.matrix import extract_tiles, read_dej, write_tile_dataset

    image = read_volume(volume, spacing_um=parse_spacing(spacing, ndim=3))
    tiles_, index = extract_tiles(
        image,
        read_dej(dej),
        depth_start_um=start,
        depth_stop_um=stop,
        step_um=step,
        layout=layout,
        n_tiles=n_tiles,
        tile_size_um=tile_size,
        out_size=out_size,
        volume_id=volume_id,
        subject=subject,
        z_sampling=z_sampling,
    )
    if len(index) == 0:
        raise InputError(
            "no tile could be cut (every tile reaches outside the volume)", path=volume
        )
    csv = write_tile_dataset(out, tiles_, index)
    depths = index["depth_um"]
    console.print(
        f"{len(index)} tiles, {depths.min():g}–{depths.max():g} µm below the DEJ → {csv.parent}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0


@app.command("train")
def train(
    data: Path = typer.Argument(..., help="Tile dataset: tiles/, tiles.csv, labels.csv."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    weights: str = typer.Option(
        "none", "--weights", help="'imagenet' (torchvision download) or 'none' (from scratch)."
    ),
    weights_file: Path | None = typer.Option(
        None, "--weights-file", help="Local torchvision MobileNetV3-Small state dict."
    ),
    split: str = typer.Option("subject", "--split", help="subject (default) or random-paper."),
    epochs: int = typer.Option(200, "--epochs", help="Most epochs per phase."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per step (paper: 32)."),
    augment: int = typer.Option(9, "--augment", help="Copies per tile, 1–9 (paper: ×9)."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate, phase 1 / scratch."),
    fine_tune_lr: float = typer.Option(1e-4, "--fine-tune-lr", help="Adam lr of phase 2."),
    fine_tune_at: int = typer.Option(100, "--fine-tune-at", help="Keras layers frozen in phase 2."),
    lr_schedule: str = typer.Option(
        "plateau", "--lr-schedule", help="plateau (paper) or cosine (to 0 over --epochs)."
    ),
    lr_factor: float = typer.Option(0.5, "--lr-factor", help="LR factor on plateau."),
    lr_patience: int = typer.Option(5, "--lr-patience", help="Epochs without improvement."),
    early_stop: int = typer.Option(15, "--early-stop", help="Stop after this many bad epochs."),
    test_fraction: float = typer.Option(1 / 3, "--test-fraction", help="Share of the test set."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Validation share of the rest."),
    normalization: str = typer.Option("tile", "--normalization", help="tile, imagenet or paper."),
    head: str = typer.Option("keras2", "--head", help="keras2 (Conv_2 1024 + dense) or keras3."),
    input_size: int = typer.Option(224, "--input-size", help="Network input side (px)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_time: float | None = typer.Option(None, "--max-time", help="Wall-clock budget (s)."),
    tie: str = typer.Option("median", "--tie", help="Rater tie rule: median, lower, upper."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/checkpoint.safetensors + .json."
    ),
    bn_recalibration: int = typer.Option(
        0, "--bn-recalibration", help="Images re-estimating BN statistics per epoch (0: off)."
    ),
) -> int:
    """Train MobileNetV3-Small with the paper's protocol; evaluate on held-out tiles."""
    from skinoct.matrix import TrainConfig, train_matrix

    config = TrainConfig(
        weights=weights,
        weights_file=None if weights_file is None else str(weights_file),
        split=split,
        epochs=epochs,
        batch_size=batch_size,
        augment=augment,
        lr=lr,
        fine_tune_lr=fine_tune_lr,
        fine_tune_at=fine_tune_at,
        lr_schedule=lr_schedule,
        lr_factor=lr_factor,
        lr_patience=lr_patience,
        early_stop_patience=early_stop,
        test_fraction=test_fraction,
        val_fraction=val_fraction,
        normalization=normalization,
        head=head,
        input_size=input_size,
        seed=seed,
        device=device,
        max_time_s=max_time,
        tie=tie,
        bn_recalibration=bn_recalibration,
    )
    result = train_matrix(data, out, config=config, resume=resume, progress=progress, log=_say)
    m = result.metrics
    console.print(
        f"model → {result.model_dir}  test accuracy {m.accuracy:.3f}, macro precision "
        f"{m.macro_precision:.3f}, macro recall {m.macro_recall:.3f}, "
        f"quadratic κ {m.quadratic_kappa:.3f} ({m.n} images, {config.split} split)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0


def _metrics_table(metrics, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("grade", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="right")
    for grade, row in metrics.per_class.items():
        table.add_row(
            escape(str(grade)),
            *(_fmt(row[k]) for k in ("precision", "recall", "f1")),
            str(row["support"]),
        )
    table.add_row(
        "macro",
        _fmt(metrics.macro_precision),
        _fmt(metrics.macro_recall),
        _fmt(metrics.macro_f1),
        str(metrics.n),
        style="bold",
    )
    return table


def _fmt(value) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


@app.command("evaluate")
def evaluate(
    predictions: Path = typer.Argument(..., help="CSV with columns true,pred (grades 1–4)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for metrics.json, confusion.csv, confusion.png."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="labels.csv: reference grades by tile_id (for predict output)."
    ),
    true_col: str = typer.Option("true", "--true-col", help="Column of reference grades."),
    pred_col: str = typer.Option("pred", "--pred-col", help="Column of predicted grades."),
    title: str | None = typer.Option(None, "--title", help="Title of the confusion figure."),
) -> int:
    """Accuracy, confusion matrix, per-grade precision/recall/F1, macro averages, κ."""
    import numpy as np

    from skinoct.io import write_json, write_text
    from skinoct.matrix import evaluate_predictions, plot_confusion, read_predictions

    true, pred = read_predictions(
        predictions, true_column=true_col, pred_column=pred_col, labels=labels
    )
    metrics = evaluate_predictions(true, pred)
    record = metrics.to_dict()
    if out is not None:
        write_json(out / "metrics.json", record)
        percent = metrics.confusion_percent
        lines = ["true,pred,count,row_percent"]
        for i, t in enumerate(metrics.classes):
            for j, p in enumerate(metrics.classes):
                lines.append(f"{t},{p},{metrics.confusion_matrix[i, j]},{percent[i, j]:.2f}")
        write_text(out / "confusion.csv", "\n".join(lines) + "\n")
        plot_confusion(metrics, out / "confusion.png", title=title)
    if as_json:
        typer.echo(json.dumps(_json_ready(record), allow_nan=False))
        return 0
    console.print(_metrics_table(metrics, f"{escape(predictions.name)}: {metrics.n} tiles"))
    console.print(
        f"accuracy {metrics.accuracy:.3f}   quadratic-weighted κ {_fmt(metrics.quadratic_kappa)}"
        f"   mean |error| {metrics.mean_absolute_error:.3f} grade",
        highlight=False,
        soft_wrap=True,
    )
    console.print("confusion matrix (rows = true grade, % of the row):", highlight=False)
    percent = metrics.confusion_percent
    for i, grade in enumerate(metrics.classes):
        cells = "  ".join(
            f"{percent[i, j]:5.1f}%" if np.isfinite(percent[i, j]) else "     –"
            for j in range(len(metrics.classes))
        )
        console.print(f"  {grade}: {cells}", highlight=False, markup=False)
    for note in metrics.undefined:
        err_console.print(f"note: undefined {note}", highlight=False, markup=False)
    return 0


def _json_ready(obj):
    from skinoct.io import json_safe

    return json_safe(obj)


def _load_input(
    path: Path, *, spacing, dej, start, stop, step, n_tiles, tile_size, size, z_sampling
):
    """Tiles + index rows for one command-line input."""
    import numpy as np
    import pandas as pd

    from skinoct.datasets import resize_tile
    from skinoct.io import read_image
    from skinoct.matrix import enface_tiles, profile_tiles, read_dej, read_tile_png

    def resized(tile):
        return resize_tile(tile, size)

    if path.is_dir() and ((path / "tiles.csv").is_file() or (path / "tiles").is_dir()):
        folder = path / "tiles"
        if (path / "tiles.csv").is_file():
            index = pd.read_csv(path / "tiles.csv", dtype={"tile_id": str, "subject": str})
        else:
            index = pd.DataFrame({"tile_id": sorted(p.stem for p in folder.glob("*.png"))})
        if len(index) == 0:
            raise InputError("tile dataset holds no tiles", path=path)
        stack = np.stack([resized(read_tile_png(folder / f"{t}.png")) for t in index["tile_id"]])
        return stack, index
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".bmp") and _is_rgb(path):
        tile = resized(read_tile_png(path))
        return tile[None], pd.DataFrame({"tile_id": [path.stem]})
    image = read_image(path, spacing_um=spacing)
    if image.axes == "zyx" and dej is not None:
        return profile_tiles(
            image,
            read_dej(dej),
            depths_um=np.arange(start, stop, step),
            n_tiles=n_tiles,
            tile_size_um=tile_size,
            out_size=size,
            z_sampling=z_sampling,
        )
    if image.axes == "zx":
        image = read_image(path, spacing_um=spacing, axes="yx")
    return enface_tiles(image, tile_size_um=tile_size, out_size=size)


def _is_rgb(path: Path) -> bool:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as img:
            return img.mode in ("RGB", "RGBA")
    except OSError:
        return False


@app.command("predict")
def predict(
    inputs: list[Path] = typer.Argument(
        ..., help="Tile PNGs, tile-dataset folders, en-face images, or volumes (with --dej)."
    ),
    out: Path = typer.Option(..., "--out", help="CSV to write: grade, p_1…p_4, expected grade."),
    model: Path | None = typer.Option(None, "--model", help=_MODEL_HELP),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (the fastest installed for this CPU), torch, onnx (onnxruntime), "
        "openvino (bf16, optional) or openvino-int8 (NNCF int8, optional).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Tiles per forward pass."),
    dej: str | None = typer.Option(None, "--dej", help=_DEJ_HELP + " Needed for volumes."),
    start: float = typer.Option(0.0, "--start", help="Volumes: first depth below the DEJ (µm)."),
    stop: float = typer.Option(70.0, "--stop", help="Volumes: depths stop before this (µm)."),
    step: float = typer.Option(1.0, "--step", help="Volumes: depth step (µm)."),
    n_tiles: int = typer.Option(3, "--n-tiles", help="Volumes: tiles per depth."),
    tile_size: float = typer.Option(400.0, "--tile-size", help="Tile side in µm."),
    spacing: str | None = typer.Option(None, "--spacing", help="Override the spacing (µm)."),
    threads: int | None = typer.Option(None, "--threads", help="onnxruntime threads."),
    z_sampling: str = typer.Option(
        "auto", "--z-sampling", help="Volumes: auto, nearest (whole slices) or linear."
    ),
    tta: bool = typer.Option(
        False, "--tta", help="Average over the 8 rotations/mirrorings of each tile (8× work)."
    ),
) -> int:
    """Grade tiles: grade, softmax probabilities and expected grade Σ p·g per tile.

    Writes OUT (CSV) and beside it OUT's name + .provenance.json: the model's identity,
    the engine that ran (what auto chose) and the options.
    """
    import numpy as np
    import pandas as pd

    from skinoct.io import write_json, write_text
    from skinoct.matrix import ENGINES, expected_grade, load_matrix_model, predict_tiles

    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    grader = load_matrix_model(model)
    _notice(grader)
    engine = grader.engine_for(engine)  # 'auto' resolved: the engine that runs
    size = grader.preprocessing.input_size
    override = parse_spacing(spacing)
    stacks, tables = [], []

    def load(path: Path) -> None:
        tiles_, index = _load_input(
            path,
            spacing=override,
            dej=dej,
            start=start,
            stop=stop,
            step=step,
            n_tiles=n_tiles,
            tile_size=tile_size,
            size=size,
            z_sampling=z_sampling,
        )
        if len(index) == 0:
            raise InputError("no tile to grade", path=path)
        index = index.copy()
        index.insert(0, "source", str(path))
        stacks.append(tiles_)
        tables.append(index)

    code = run_batch(list(inputs), load, description="reading inputs")
    if not stacks:
        return code
    tiles_ = np.concatenate(stacks)
    probs = predict_tiles(
        tiles_,
        grader,
        engine=engine,
        batch_size=batch_size,
        threads=threads,
        tta=tta,
        progress=progress,
    )
    table = pd.concat(tables, ignore_index=True)
    keep = [
        c
        for c in ("source", "tile_id", "volume_id", "subject", "depth_um", "row", "col")
        if c in table.columns
    ]
    table = table[keep]
    classes = np.asarray(grader.classes)
    table["grade"] = classes[probs.argmax(axis=1)]
    for j, g in enumerate(grader.classes):
        table[f"p_{g}"] = probs[:, j]
    table["expected_grade"] = expected_grade(probs, classes=grader.classes)
    write_text(out, table.to_csv(index=False, float_format="%.5g"))
    write_json(
        _provenance_path(out),
        {
            "model": grader.provenance(engine=engine),  # the engine that ran, 'auto' resolved
            "options": {"batch_size": batch_size, "tta": tta, "threads": threads},
            "inputs": [str(p) for p in inputs],
            "n_tiles": len(table),
        },
    )
    console.print(
        f"{len(table)} tiles graded ({engine}{', 8-view TTA' if tta else ''}) → {out}; "
        "mean expected grade "
        f"{table['expected_grade'].mean():.2f}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return code


@app.command("export")
def export(
    model_dir: Path | None = typer.Argument(None, help=_MODEL_HELP),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write."),
) -> int:
    """Export a grading model to ONNX and check it against torch on random tiles."""
    import numpy as np

    from skinoct.matrix import (
        export_matrix_onnx,
        load_matrix_model,
        predict_tiles,
        preprocess_tiles,
    )
    from skinoct.models import OnnxRunner

    grader = load_matrix_model(model_dir)
    export_matrix_onnx(grader, onnx)
    size = grader.preprocessing.input_size
    tiles_ = np.random.default_rng(0).integers(0, 256, (4, 3, size, size), dtype=np.uint8)
    logits = OnnxRunner(onnx)(preprocess_tiles(tiles_, grader.preprocessing, normalize=False))
    p_onnx = np.exp(logits - logits.max(axis=1, keepdims=True))
    p_onnx /= p_onnx.sum(axis=1, keepdims=True)
    diff = np.abs(predict_tiles(tiles_, grader) - p_onnx)
    console.print(
        f"ONNX → {onnx} (input 'input' N×3×{size}×{size}, normalised as "
        f"'{grader.preprocessing.normalization}'; output 'logits'); "
        f"max |Δp| vs torch {diff.max():.2e}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0


@app.command("layers")
def layers(
    head: str = typer.Option("keras2", "--head", help="keras2 or keras3."),
    fine_tune_at: int = typer.Option(100, "--fine-tune-at", help="Keras layers frozen."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
) -> int:
    """The Keras MobileNetV3Small layer list and the torchvision module of each layer."""
    from skinoct.matrix import keras_layer_table

    rows = keras_layer_table(head=head)
    if not 0 <= fine_tune_at <= len(rows):
        raise InputError(f"--fine-tune-at must be 0–{len(rows)}, got {fine_tune_at}")
    if as_csv:
        typer.echo("index,keras_name,keras_class,torch_module,frozen_in_fine_tuning")
        for r in rows:
            typer.echo(
                f"{r.index},{r.name},{r.kind},{r.module or ''},{int(r.index < fine_tune_at)}"
            )
        return 0
    for r in rows:
        mark = "frozen" if r.index < fine_tune_at else "trains"
        console.print(
            f"{r.index:4d}  {r.name:<48} {r.kind:<24} {r.module or '—':<28} {mark}", highlight=False
        )
    return 0
