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
    folds: int | None = typer.Option(
        None,
        "--folds",
        help="CV folds grouped by subject (0 = no CV, 1 = one 80/20 hold-out split; "
        "default: recipe — 5, or 1 with --time-budget).",
    ),
    epochs: int = typer.Option(60, "--epochs", help="Maximum epochs per fold."),
    patience: int = typer.Option(8, "--patience", help="Early stopping patience (epochs)."),
    time_budget: float | None = typer.Option(
        None,
        "--time-budget",
        help="Wall-clock budget in MINUTES: stop then, keep the best-validation weights "
        "(run again to resume).",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Patches per step (default: recipe)."
    ),
    patch: tuple[int, int] | None = typer.Option(
        None, "--patch", help="Patch size Z X in pixels on the model grid (default: recipe)."
    ),
    patches_per_section: int | None = typer.Option(
        None, "--patches-per-section", help="Patches per section per epoch (default: recipe)."
    ),
    sampling: str = typer.Option(
        "band", "--sampling", help="band (patches on the skin's layers) or uniform."
    ),
    levels: int | None = typer.Option(
        None,
        "--levels",
        help="U-Net resolution levels, 2-8: each level doubles the rows of context "
        "(default: recipe, or the --init model's; with --init, all but the deepest "
        "level both networks share start from its weights).",
    ),
    layer_intensity: float = typer.Option(
        0.0,
        "--layer-intensity",
        help="Probability of a random gain and offset per layer of a patch "
        "(SynthSeg-style contrast randomisation; 0 = off).",
    ),
    resolution: float = typer.Option(
        0.0,
        "--resolution",
        help="Probability of a wide anisotropic blur and of simulated coarse pixels "
        "(1-5x in z, 1-2.5x in x) per patch, for images coarser than the model grid "
        "(0 = off).",
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Initial learning rate (cosine schedule)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    init: Path | None = typer.Option(
        None, "--init", help="Fine-tune from this model directory ('bundled': the bundled model)."
    ),
    compare: bool = typer.Option(
        True,
        "--compare/--no-compare",
        help="Also score the bundled model on the validation sections, for comparison.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (runs are reproducible)."),
    workers: int | None = typer.Option(
        None, "--workers", help="Data-loader processes (default 0 on CPU, up to 8 on CUDA)."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard completed folds in --out instead of resuming."
    ),
) -> int:
    """Train a layer-segmentation model; options left out are chosen from the data.

    The recipe (patch and batch size, sampling, network width, folds) is derived from
    a fingerprint of the dataset and written to the model's manifest; every choice can
    be overridden by its option.
    """
    from skinoct.cli._common import STATE
    from skinoct.layers import TrainConfig, train_layers

    config = TrainConfig(
        folds=folds,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        patch=None if patch is None else tuple(patch),
        patches_per_section=patches_per_section,
        sampling=sampling,
        levels=levels,
        layer_intensity=layer_intensity,
        resolution=resolution,
        lr=lr,
        seed=seed,
        device=device,
        num_workers=workers,
        time_budget_s=None if time_budget is None else time_budget * 60.0,
    )
    if init is not None and str(init) == "bundled" and not init.exists():
        from skinoct.models import bundled_model_dir

        init = bundled_model_dir("layers")
    reporter = _TrainReporter(quiet=STATE.quiet)
    try:
        result = train_layers(
            data_dir,
            out,
            config,
            init=init,
            restart=restart,
            callback=reporter,
            compare_with="bundled" if compare else None,
        )
    finally:
        reporter.close()
    _print_training_summary(result)
    return 0


def _print_training_summary(result) -> None:
    """Validation Dice per layer, the recipe, and the comparison line."""
    report = result.cv_report
    if report.get("folds"):
        rows = [(str(f["fold"]), f["dice"]) for f in report["folds"]]
        kind = "Cross-validation" if len(rows) > 1 else "Hold-out validation"
        title = f"{kind} Dice (held-out subjects)"
        console.print(_dice_table(title, rows, report["summary"]))
    recipe = report.get("recipe") or {}
    chosen = recipe.get("chosen", {})
    if chosen:
        net = chosen.get("network") or {}
        mine = recipe.get("overridden")
        console.print(
            f"recipe: patch {chosen.get('patch')}, batch {chosen.get('batch_size')}, "
            f"{chosen.get('patches_per_section')} patches/section, sampling "
            f"{chosen.get('sampling')}, channels {net.get('channels')}, folds "
            f"{chosen.get('folds')}"
            + (
                f" (set by you: {', '.join(recipe['overridden'])})"
                if recipe.get("overridden")
                else ""
            ),
            highlight=False,
        )
    comparison = report.get("comparison")
    if comparison:
        mine, other = comparison["trained"], comparison["other_scores"]
        console.print(
            f"on the same {comparison['n_sections']} validation sections: this model mean "
            f"Dice {_fmt(mine.get('mean_dice'))}, DEJ error {_fmt_um(mine.get('dej_mae_um'))}"
            f" | {comparison['other']} model {_fmt(other.get('mean_dice'))}, "
            f"{_fmt_um(other.get('dej_mae_um'))}",
            highlight=False,
        )
    if result.stopped_by_time:
        console.print(
            "stopped by the time budget: run the same command again to continue", highlight=False
        )
    if result.model is not None:
        # a trained model's manifest starts without one: this run calibrated it
        calibration = result.model.manifest.get("uncertainty")
        if calibration:
            console.print(
                f"DEJ-uncertainty threshold {calibration['dej_entropy_threshold']:.3f} "
                f"(calibrated on {calibration['n_sections']} clean validation sections; "
                f"band ±{calibration['entropy_band_um']:g} µm, stretches of at least "
                f"{calibration['min_segment_um']:g} µm)",
                highlight=False,
            )
        console.print(f"model written to {escape(str(result.model_dir))}", highlight=False)


def _fmt_um(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.1f} µm"


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
        elif kind == "recipe":
            chosen = event["recipe"]["chosen"]
            self._log(
                f"recipe: patch {chosen['patch']}, batch {chosen['batch_size']}, "
                f"{chosen['patches_per_section']} patches/section, {chosen['sampling']} "
                f"sampling, folds {chosen['folds']}"
            )
        elif kind == "stopped_by_time":
            self.close()
            self._log("time budget reached: keeping the best weights so far")
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
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="torch, onnx, openvino or auto (default: the fastest installed; torch with "
        "--mc-dropout or a GPU).",
    ),
    spacing: str | None = typer.Option(
        None, "--spacing", help="Pixel size DZ DX in µm; overrides the files' metadata."
    ),
    device: str = typer.Option("auto", "--device", help="Torch device: auto, cpu or cuda."),
    threads: int | None = typer.Option(None, "--threads", help="onnxruntime threads."),
    decoding: str = typer.Option(
        "ordered",
        "--decoding",
        help="ordered: most probable labelling ordered air > SC > epidermis > dermis per "
        "column, no islands (default); argmax: raw per-pixel argmax, diagnostics only.",
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Average the cross-validation fold models of --model (MODEL/folds/fold_*).",
    ),
    axes: str | None = axes_option(2),
) -> int:
    """Segment sections into air, stratum corneum, epidermis and dermis, with uncertainty.

    Writes per image <stem>_mask.tif, <stem>_entropy.tif, <stem>_overlay.png,
    <stem>_entropy.png and <stem>.metrics.json.
    """
    prefer_passive_openmp()
    from skinoct.cli._axes import read_section_checked
    from skinoct.io import provenance_banner
    from skinoct.layers import (
        image_stem,
        load_layers_model,
        resolve_section_engine,
        segment_section,
        write_segmentation,
    )

    # MC-dropout and decoding are checked by segment_section (its error names the argument)
    override = parse_spacing(spacing, ndim=2)
    stems: dict[str, Path] = {}
    for path in images:
        stem = image_stem(path)
        if stem in stems:
            raise InputError(
                f"two inputs would write the same outputs ({stems[stem].name})", path=path
            )
        stems[stem] = path
    if ensemble:
        from skinoct.layers import load_layers_ensemble

        if model_dir is None:
            raise InputError("--ensemble needs --model: a model trained with 2 or more folds")
        model = load_layers_ensemble(model_dir)
    else:
        model = load_layers_model(model_dir)
    _notice(model)
    try:  # the outputs record the engine that runs, not 'auto'
        engine = resolve_section_engine(engine, mc_dropout=mc_dropout, device=device)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    options = {"engine": engine, "tta": tta, "mc_dropout": mc_dropout, "ensemble": ensemble,
               "decoding": decoding}  # fmt: skip

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
            decoding=decoding,
        )
        write_segmentation(out, image_stem(path), image, result, model=model, options=options)

    code = run_batch(images, one, description="segmenting")
    if banner := provenance_banner(model.manifest):  # the closing line says it too
        err_console.print(f"note: {banner}", style="yellow", highlight=False, markup=False)
    return code


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
    engine: str = typer.Option(
        "auto", "--engine", help="torch, onnx, openvino or auto (the fastest installed)."
    ),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirror."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-section report (JSON)."),
    device: str = typer.Option("auto", "--device", help="Torch device: auto, cpu or cuda."),
) -> int:
    """Dice per layer of a model on an annotated dataset (e.g. your own held-out data)."""
    prefer_passive_openmp()
    from skinoct.io import write_json
    from skinoct.layers import evaluate_dataset, load_layers_model, resolve_section_engine

    model = load_layers_model(model_dir)
    _notice(model)
    try:
        engine = resolve_section_engine(engine, device=device)  # the report names it
        report = evaluate_dataset(model, data_dir, engine=engine, tta=tta, device=device)
    except ValueError as exc:  # invalid options, checked by the library
        if isinstance(exc, InputError):
            raise
        raise InputError(str(exc)) from None
    rows = [("all sections", {k: v["mean"] for k, v in report["summary"].items()})]
    title = f"Dice on {escape(str(data_dir))} ({report['n_sections']} sections)"
    console.print(_dice_table(title, rows, None))
    if out is not None:
        write_json(out, report)
    return 0
