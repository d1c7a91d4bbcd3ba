"""``skinoct layers``: skin-layer segmentation and morphometry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from skinoct.cli._axes import axes_option
from skinoct.cli._common import (
    console,
    err_console,
    parse_spacing,
    prefer_passive_openmp,
    run_batch,
)
from skinoct.cli._dataset import app as dataset_app
from skinoct.cli._measure import measure
from skinoct.errors import InputError

app = typer.Typer(help="Skin-layer segmentation and morphometry.", no_args_is_help=True)
app.command("measure")(measure)
app.add_typer(dataset_app, name="dataset")

_MODEL_HELP = "Model directory (default: the bundled model, trained on synthetic phantoms only)."
_LAYERS = ("stratum_corneum", "epidermis", "dermis")
_SHORT = {"stratum_corneum": "SC", "epidermis": "epidermis", "dermis": "dermis"}


def _fmt(value) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


def _dice_table(title: str, rows: list[tuple[str, dict]], summary: dict | None):
    from rich.table import Table

    layers = [n for n in _LAYERS if any(n in d for _, d in rows)]
    table = Table(title=title, title_justify="left")
    table.add_column("fold")
    for name in layers:
        table.add_column(f"Dice {_SHORT[name]}", justify="right")
    table.add_column("mean", justify="right")
    for label, dice in rows:
        table.add_row(label, *[_fmt(dice.get(n)) for n in layers], _fmt(dice.get("mean_dice")))
    if summary:
        cells = []
        for name in [*layers, "mean_dice"]:
            s = summary.get(name, {})
            sd = s.get("std")
            cells.append(_fmt(s.get("mean")) + ("" if sd is None or sd != sd else f" ± {sd:.3f}"))
        table.add_row("mean ± sd", *cells, style="bold")
    return table


def _notice(model) -> None:
    text = model.manifest.get("notice")
    if text:
        err_console.print(f"[yellow]note:[/yellow] {escape(str(text))}", highlight=False)


@app.command("train")
def train(
    data_dir: Path = typer.Argument(..., help="Dataset: images/, masks/, optional index.csv."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (resumable)."),
    folds: int = typer.Option(5, "--folds", help="CV folds grouped by subject (0 = no CV)."),
    epochs: int = typer.Option(60, "--epochs", help="Maximum epochs per fold."),
    patience: int = typer.Option(8, "--patience", help="Early stopping patience (epochs)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Patches per step."),
    patch: tuple[int, int] = typer.Option(
        (256, 256), "--patch", help="Patch size Z X in pixels on the model grid."
    ),
    patches_per_section: int = typer.Option(
        4, "--patches-per-section", help="Patches per training section per epoch."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Initial learning rate (cosine schedule)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    init: Path | None = typer.Option(
        None, "--init", help="Fine-tune from this model directory ('bundled': the bundled model)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (runs are reproducible)."),
    workers: int | None = typer.Option(
        None, "--workers", help="Data-loader processes (default 0 on CPU, up to 8 on CUDA)."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard completed folds in --out instead of resuming."
    ),
) -> int:
    """Cross-validate (k folds grouped by subject) and train a layer-segmentation model."""
    from skinoct.cli._common import STATE
    from skinoct.layers import TrainConfig, train_layers

    try:
        config = TrainConfig(
            folds=folds,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            patch=tuple(patch),
            patches_per_section=patches_per_section,
            lr=lr,
            seed=seed,
            device=device,
            num_workers=workers,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if init is not None and str(init) == "bundled" and not init.exists():
        from skinoct.models import bundled_model_dir

        init = bundled_model_dir("layers")
    reporter = _TrainReporter(quiet=STATE.quiet)
    try:
        result = train_layers(data_dir, out, config, init=init, callback=reporter)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(str(exc)) from None
    finally:
        reporter.close()
    report = result.cv_report
    if report.get("folds"):
        rows = [(str(f["fold"]), f["dice"]) for f in report["folds"]]
        console.print(
            _dice_table("Cross-validation Dice (held-out subjects)", rows, report["summary"])
        )
    console.print(
        f"model written to {result.model_dir}", highlight=False, soft_wrap=True, markup=False
    )
    return 0


class _TrainReporter:
    """Turns training events into a rich progress display (or quiet log lines)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and err_console.is_terminal
        self.progress = None
        self.task = None

    def _start(self, description: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.close()
        if not self.live:
            return
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "{task.fields[status]}",
            console=err_console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, status="")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _log(self, text: str) -> None:
        if not self.quiet:
            err_console.print(text, highlight=False, markup=False)

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "data":
            self._log(
                f"{event['n_sections']} sections, {event['n_subjects']} subjects, labels "
                f"{event['label_values']}, device {event['device']}"
            )
        elif kind == "fold_skipped":
            self._log(
                f"fold {event['fold'] + 1}/{event['folds']}: done earlier, skipped "
                f"(mean Dice {_fmt(event.get('mean_dice'))})"
            )
        elif kind == "fold_start":
            self._start(f"fold {event['fold'] + 1}/{event['folds']}", 0)
        elif kind == "final_start":
            self._start("final model", 0)
            self._log(f"final model: all {event['n_train']} sections, {event['epochs']} epochs")
        elif kind == "step" and self.progress is not None:
            total = event["steps"]
            self.progress.update(
                self.task,
                total=total,
                completed=event["step"],
                description=self._desc(event),
                status=f"loss {event['loss']:.3f}",
            )
        elif kind == "epoch":
            status = f"loss {event['train_loss']:.3f}"
            if "val_loss" in event:
                dice = event["val_dice"][1:]  # tissue classes, air left out
                status += f"  val {event['val_loss']:.3f}  Dice " + " ".join(
                    f"{d:.3f}" for d in dice
                )
            if self.progress is not None:
                self.progress.update(self.task, status=status)
        elif kind == "fold_done":
            self.close()
            d = event["dice"]
            self._log(
                f"fold {event['fold'] + 1}/{event['folds']}: best epoch "
                f"{event['best_epoch']}, mean Dice {_fmt(d.get('mean_dice'))}"
            )
        elif kind in ("done", "final_skipped"):
            self.close()

    @staticmethod
    def _desc(event: dict) -> str:
        where = "final" if event["fold"] is None else f"fold {event['fold'] + 1}"
        return f"{where} epoch {event['epoch']}"


@app.command("segment")
def segment(
    images: list[Path] = typer.Argument(..., help="Vertical sections (TIFF, PNG, NumPy …)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    model_dir: Path | None = typer.Option(None, "--model", help=_MODEL_HELP),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirror."),
    mc_dropout: int = typer.Option(
        0, "--mc-dropout", help="MC-dropout passes for epistemic uncertainty (torch engine)."
    ),
    engine: str = typer.Option("torch", "--engine", help="torch or onnx (onnxruntime, CPU)."),
    spacing: str | None = typer.Option(
        None, "--spacing", help="Pixel size DZ DX in µm; overrides the files' metadata."
    ),
    device: str = typer.Option("auto", "--device", help="Torch device: auto, cpu or cuda."),
    threads: int | None = typer.Option(None, "--threads", help="onnxruntime threads."),
    axes: str | None = axes_option(2),
) -> int:
    """Segment sections into air, stratum corneum, epidermis and dermis, with uncertainty.

    Writes per image <stem>_mask.tif, <stem>_entropy.tif, <stem>_overlay.png,
    <stem>_entropy.png and <stem>.metrics.json.
    """
    prefer_passive_openmp()
    from skinoct.cli._axes import read_section_checked
    from skinoct.layers import image_stem, load_layers_model, segment_section
    from skinoct.layers._outputs import write_segmentation

    if engine not in ("torch", "onnx"):
        raise InputError(f"--engine must be 'torch' or 'onnx', got {engine!r}")
    if mc_dropout < 0:
        raise InputError(f"--mc-dropout must be >= 0, got {mc_dropout}")
    if mc_dropout and engine == "onnx":
        raise InputError("--mc-dropout needs --engine torch (the ONNX export has no dropout)")
    override = parse_spacing(spacing, ndim=2)
    stems: dict[str, Path] = {}
    for path in images:
        stem = image_stem(path)
        if stem in stems:
            raise InputError(
                f"two inputs would write the same outputs ({stems[stem].name})", path=path
            )
        stems[stem] = path
    model = load_layers_model(model_dir)
    _notice(model)
    options = {"engine": engine, "tta": tta, "mc_dropout": mc_dropout}

    def one(path: Path) -> None:
        image = read_section_checked(path, spacing_um=override, axes=axes)
        result = segment_section(
            image.data,
            model,
            spacing_um=image.spacing_um,
            tta=tta,
            mc_dropout=mc_dropout,
            engine=engine,
            device=device,
            threads=threads,
        )
        write_segmentation(out, image_stem(path), image, result, model=model, options=options)

    return run_batch(images, one, description="segmenting")


@app.command("export")
def export(
    model_dir: Path | None = typer.Argument(None, help=_MODEL_HELP),
    onnx: Path = typer.Option(..., "--onnx", help="Destination .onnx file."),
) -> int:
    """Export a model to ONNX and check onnxruntime against torch (max |Δlogit| ≤ 1e-4)."""
    import numpy as np

    from skinoct.errors import ModelError
    from skinoct.layers import load_layers_model, predict_logits

    model = load_layers_model(model_dir)
    model.export_onnx(onnx)
    d = model.spec.divisor
    probe = np.random.default_rng(0).normal(size=(1, 1, 4 * d, 6 * d)).astype(np.float32)
    torch_logits = predict_logits(model, probe, engine="torch", device="cpu")
    from skinoct.models import OnnxRunner

    onnx_logits = OnnxRunner(onnx)(probe)
    diff = float(np.max(np.abs(torch_logits - onnx_logits)))
    if not diff <= 1e-4:
        raise ModelError(f"ONNX logits differ from torch by {diff:.2e} (> 1e-4)", path=onnx)
    console.print(
        f"wrote {onnx} (max |logit difference| vs torch {diff:.1e})",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    return 0


@app.command("evaluate")
def evaluate(
    data_dir: Path = typer.Argument(..., help="Annotated dataset: images/ and masks/."),
    model_dir: Path | None = typer.Option(None, "--model", help=_MODEL_HELP),
    engine: str = typer.Option("torch", "--engine", help="torch or onnx."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirror."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-section report (JSON)."),
    device: str = typer.Option("auto", "--device", help="Torch device: auto, cpu or cuda."),
) -> int:
    """Dice per layer of a model on an annotated dataset (e.g. your own held-out data)."""
    prefer_passive_openmp()
    from skinoct.io import write_json
    from skinoct.layers import load_layers_model
    from skinoct.layers._evaluate import evaluate_dataset

    if engine not in ("torch", "onnx"):
        raise InputError(f"--engine must be 'torch' or 'onnx', got {engine!r}")
    model = load_layers_model(model_dir)
    _notice(model)
    report = evaluate_dataset(model, data_dir, engine=engine, tta=tta, device=device)
    rows = [("all sections", {k: v["mean"] for k, v in report["summary"].items()})]
    title = f"Dice on {escape(str(data_dir))} ({report['n_sections']} sections)"
    console.print(_dice_table(title, rows, None))
    if out is not None:
        write_json(out, report)
    return 0
