"""Training: subject-grouped k-fold cross-validation, then the final model.

Each fold trains a fresh network (MONAI ``UNet``, ``DiceCELoss``) on augmented
patches, validates on whole sections every epoch, stops early on the validation
loss and keeps the best epoch's weights. Its Dice per layer is then measured on
the held-out sections at their own resolution, through the same inference path as
``skinoct layers segment``. Folds are written as they finish
(``MODEL_DIR/folds/fold_<k>.json``) and every epoch is checkpointed
(``folds/checkpoint_*.safetensors`` + ``.json``), so an interrupted run — or one
stopped by its time budget — resumes where it stopped. The epoch loop, early
stopping, best weights, checkpoints and the budget are :mod:`skinoct.models`'
training skeleton; :mod:`skinoct.layers._fit` holds the task's network, loss and
patch sampling.

The final model is retrained on all sections for the median best epoch of the
folds (``folds >= 2``; the fold models stay in ``folds/`` for ``--ensemble``), or is
the best-validation network of a single hold-out split (``folds=1``, the recipe's
choice under a time budget). Options left ``None`` are chosen from a dataset
fingerprint by :mod:`skinoct.layers._recipe` and written to the manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from skinoct.io import write_json
from skinoct.layers._compare import compare_on_folds
from skinoct.layers._data import LayerDataset, discover_dataset, prepare_section
from skinoct.layers._evaluate import score_sections
from skinoct.layers._fit import FitResult, PatchSampler, fit_network
from skinoct.layers._folds import (
    check_labels_occur,
    cv_report,
    dataset_summary,
    existing_final,
    grouped_folds,
    prepare_out_dir,
    run_fingerprint,
    splits,
)
from skinoct.layers._metrics import summarize_dice
from skinoct.layers._model import (
    DEFAULT_NORMALIZATION,
    LayersModel,
    load_layers_model,
    make_normalizer,
    save_layers_model,
)
from skinoct.layers._network import NetworkSpec
from skinoct.layers._recipe import dataset_fingerprint, plan_recipe
from skinoct.layers._sampling import BandSampler
from skinoct.layers._train_config import TrainConfig
from skinoct.models import Budget, Emitter, TrainEvent, check_config, resolve_device

__all__ = ["TrainConfig", "TrainEvent", "TrainResult", "grouped_folds", "train_layers"]

CV_REPORT_NAME = "cv_report.json"
FOLDS_DIR = "folds"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_layers` returns.

    ``model`` is None when the time budget ended the run during cross-validation
    (``stopped_by_time``); calling :func:`train_layers` again resumes it.
    """

    model_dir: Path
    model: LayersModel | None = field(repr=False)
    cv_report: dict[str, Any] = field(repr=False)
    stopped_by_time: bool = False


def train_layers(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    init: str | Path | None = None,
    restart: bool = False,
    provenance: dict[str, Any] | None = None,
    notice: str | None = None,
    callback: Callable[[TrainEvent], None] | None = None,
    sampler: PatchSampler | None = None,
    compare_with: str | Path | LayersModel | None = None,
) -> TrainResult:
    """Cross-validate and train a skin-layer segmentation model on a dataset folder.

    Parameters
    ----------
    data_dir : str or Path
        Dataset in the ``images/`` + ``masks/`` layout (:func:`discover_dataset`).
    out_dir : str or Path
        Model directory: ``model.safetensors`` + ``model.json`` (final model),
        ``cv_report.json`` and ``folds/`` (one model and one result file per fold).
    config : TrainConfig, optional
        Training options; ``None`` fields are chosen by the recipe from the data.
    init : str or Path, optional
        Model directory to start from (fine-tuning): its model spacing and
        normalisation are kept, and its architecture unless ``config.network`` sets
        another (whose tensors that do not fit start fresh, with a warning); output
        layers that do not fit a different class set are re-initialised, with a
        warning.
    restart : bool
        Discard completed folds (and checkpoints) of an earlier run in ``out_dir``
        instead of resuming.
    provenance : dict, optional
        Extra facts stored under ``training`` in the manifest (e.g.
        ``{"synthetic_data": True}``).
    notice : str, optional
        Caveat stored in the manifest and shown when the model is used.
    callback : callable, optional
        Called with a :class:`~skinoct.models.TrainEvent` for each event (kind, read
        as ``event["event"]``: ``'data'``, ``'fold_start'``, ``'resumed'``, ``'step'``,
        ``'epoch'``, ``'fold_done'``, ``'fold_skipped'``, ``'final_start'``,
        ``'final_skipped'``, ``'stopped_by_time'``, ``'compared'``, ``'calibrated'``
        (the hold-out split's DEJ-uncertainty threshold), ``'done'``; values as
        ``event[key]``); the CLI draws its progress bars from them.
    sampler : callable, optional
        ``sampler(sections, *, patch, length, seed)`` → the dataset of one epoch's
        ``(image, label)`` patches (default: uniformly drawn augmented patches,
        :class:`~skinoct.layers._augment.TrainPatches`). Called once per epoch.
    compare_with : str, Path or LayersModel, optional
        A model (``'bundled'``: the bundled one) scored on the same validation
        sections as the folds; the result is ``cv_report["comparison"]``, so a user
        sees whether training beat the model they started from.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Bad dataset (see :func:`discover_dataset`), a declared label that never
        occurs, too few subjects for the folds, or ``out_dir`` holding folds of a
        different run (use ``restart``).
    """
    run = _setup(data_dir, out_dir, config or TrainConfig(), init, restart, callback, sampler)
    fold_results: list[dict[str, Any]] = []
    holdout = run.config.folds == 1
    for k, (tr, va) in enumerate(splits(run.dataset.subjects, run.config.folds)):
        result = _run_fold(run, k, tr, va, keep_partial=holdout)
        if result is None:  # the time budget ran out
            report = cv_report(run, fold_results)
            return TrainResult(run.out_dir, None, report, stopped_by_time=True)
        fold_results.append(result)
    report = cv_report(run, fold_results)
    if compare_with is not None and fold_results:
        report["comparison"] = compare_on_folds(compare_with, run.dataset, fold_results)
        run.emit("compared", **report["comparison"])
    if run.config.folds:
        write_json(run.out_dir / CV_REPORT_NAME, report)
    if holdout:
        model, stopped = _holdout_model(run, report, fold_results[0], provenance, notice)
    else:
        model, stopped = _final_model(run, report, provenance=provenance, notice=notice)
    run.emit("done", model_dir=str(run.out_dir), summary=report.get("summary"))
    return TrainResult(run.out_dir, model, report, stopped_by_time=stopped)


# ------------------------------------------------------------------------ internals


@dataclass(frozen=True)
class _Run:
    """Everything the folds and the final fit of one :func:`train_layers` call share."""

    out_dir: Path
    folds_dir: Path
    config: TrainConfig
    dataset: LayerDataset
    sections: list
    normalization: dict[str, Any]
    base: LayersModel | None
    device: Any
    workers: int
    fingerprint: str
    emit: Emitter
    budget: Budget
    sampler: PatchSampler
    recipe: dict[str, Any]

    def fit(self, train, val, *, seed: int, fold: int | None, name: str, **kw) -> FitResult:
        return fit_network(
            train,
            val,
            n_classes=len(self.dataset.label_values),
            config=kw.pop("config", self.config),
            device=self.device,
            workers=self.workers,
            seed=seed,
            init_state=None if self.base is None else self.base.state_dict(),
            init_labels=None if self.base is None else self.base.label_values,
            label_values=self.dataset.label_values,
            emit=self.emit,
            fold=fold,
            budget=self.budget,
            checkpoint_dir=self.folds_dir,
            checkpoint_name=name,
            sampler=self.sampler,
            time_schedule=self.config.folds == 1,  # the budget is this one fit's
            **kw,
        )

    def model_from(self, model: LayersModel) -> LayersModel:
        """A loaded fold model as a fresh in-memory model (no manifest of its own)."""
        return LayersModel(
            self.config.network,
            model.state_dict(),
            label_values=self.dataset.label_values,
            spacing_um=self.config.model_spacing_um,
            normalization=self.normalization,
        )

    def model(self, network) -> LayersModel:
        return LayersModel(
            self.config.network,
            network.state_dict(),
            label_values=self.dataset.label_values,
            spacing_um=self.config.model_spacing_um,
            normalization=self.normalization,
        )


def _setup(data_dir, out_dir, config, init, restart, callback, sampler) -> _Run:
    """Read and prepare the data, choose the recipe, claim (or resume) ``out_dir``."""
    budget = Budget(config.time_budget_s)
    emit = Emitter(callback)
    out_dir = Path(out_dir)
    dataset = discover_dataset(data_dir)
    base = load_layers_model(init) if init is not None else None
    overridden = config.overridden()  # before the initial model's architecture fills in
    if base is not None:
        # An explicit network wins (a deeper or wider one, warm-started by name and
        # shape, :func:`~skinoct.layers._network.load_matching_weights`); else the
        # initial model's architecture is kept.
        network = config.resolved_network(base.spec)
        config = replace(config, network=network, model_spacing_um=base.spacing_um)
    normalization = dict(base.normalization) if base is not None else dict(DEFAULT_NORMALIZATION)
    device = resolve_device(config.device)
    normalize = make_normalizer(normalization)
    sections = [
        prepare_section(
            r,
            label_values=dataset.label_values,
            model_spacing_um=config.model_spacing_um,
            normalize=normalize,
        )
        for r in dataset.records
    ]
    check_labels_occur(dataset, sections)
    config, recipe = _apply_recipe(config, dataset, sections, base, device, overridden)
    emit(
        "data",
        n_sections=len(sections),
        n_subjects=len(set(dataset.subjects)),
        label_values=list(dataset.label_values),
        device=str(device),
    )
    emit("recipe", recipe=recipe)
    if sampler is None:
        sampler = BandSampler(
            dataset.label_values, mode=config.sampling,
            layer_intensity=config.layer_intensity, resolution=config.resolution,
        )  # fmt: skip
    fingerprint = run_fingerprint(dataset, config, base)
    folds_dir = out_dir / FOLDS_DIR
    prepare_out_dir(out_dir, folds_dir, fingerprint, restart=restart)
    return _Run(
        out_dir, folds_dir, config, dataset, sections, normalization, base, device,
        _workers(config, device), fingerprint, emit, budget, sampler, recipe,
    )  # fmt: skip


def _apply_recipe(config, dataset, sections, base, device, overridden) -> tuple[TrainConfig, dict]:
    """Fill the config's ``None`` fields from the dataset fingerprint; what and why."""
    divisor = config.resolved_network(base.spec if base is not None else NetworkSpec()).divisor
    fp = dataset_fingerprint(
        [s.target for s in sections],
        subjects=dataset.subjects,
        label_values=dataset.label_values,
        model_spacing_um=config.model_spacing_um,
    )
    recipe = plan_recipe(
        fp,
        divisor=divisor,
        gpu=device.type == "cuda",
        time_budget_s=config.time_budget_s,
        init_channels=None if base is None else base.spec.channels,
    )
    config = config.with_recipe(recipe)
    check_config(
        not any(p % config.network.divisor for p in config.patch),
        f"patch must be multiples of {config.network.divisor} for this network",
    )
    chosen = {name: getattr(config, name) for name in TrainConfig.RECIPE_FIELDS}
    chosen["network"] = config.network.to_dict()
    chosen["patch"] = list(config.patch)
    chosen["sampling"] = config.sampling
    reasons = {k: v for k, v in recipe.reasons.items() if k not in overridden}
    if "network" in overridden:  # the widths are the user's, not the recipe's
        reasons.pop("channels", None)
    return config, {
        "fingerprint": fp.to_dict(),
        "chosen": chosen,
        "overridden": overridden,
        "reasons": reasons,
    }


def _run_fold(run: _Run, k: int, tr, va, *, keep_partial: bool) -> dict[str, Any] | None:
    """Train, score and record fold ``k`` (or read it back); None when time ran out.

    With ``keep_partial`` (the hold-out split) a fit cut short by the budget is kept:
    its best-validation weights are the result, and its checkpoint lets a later call
    continue it.
    """
    config, dataset, folds = run.config, run.dataset, run.config.folds
    done = run.folds_dir / f"fold_{k}.json"
    if done.is_file():
        result = json.loads(done.read_text(encoding="utf-8"))
        run.emit("fold_skipped", fold=k, folds=folds, mean_dice=result["dice"].get("mean_dice"))
        return result
    if run.budget.exhausted():
        run.emit("stopped_by_time", f"time budget spent before fold {k + 1}", fold=k)
        return None
    run.emit("fold_start", fold=k, folds=folds, n_train=len(tr), n_val=len(va))
    fit = run.fit(
        [run.sections[i] for i in tr],
        [run.sections[i] for i in va],
        seed=config.seed * 1000 + k,
        fold=k,
        name=f"checkpoint_fold_{k}",
    )
    if fit.stopped_by_time:
        run.emit("stopped_by_time", f"time budget spent in fold {k + 1}", fold=k)
        if not keep_partial:
            return None
    fold_model = run.model(fit.network)
    records = [dataset.records[i] for i in va]
    per_section = score_sections(fold_model, records, dataset.tissue_values, device=run.device)
    summary = summarize_dice([s["dice"] for s in per_section])
    result = {
        "fold": k,
        "n_train": len(tr),
        "n_val": len(va),
        "val_subjects": sorted({r.subject for r in records}),
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "best_val_loss": fit.best_val_loss,
        "dice": {name: v["mean"] for name, v in summary.items()},
        "sections": per_section,
        "history": fit.history,
        "stopped_by_time": fit.stopped_by_time,
    }
    training = {"fold": k, "fingerprint": run.fingerprint}
    save_layers_model(run.folds_dir / f"fold_{k}", fold_model, training=training)
    if not fit.stopped_by_time:  # a cut-short fold is trained on when resumed
        write_json(done, result)
    run.emit("fold_done", fold=k, folds=folds, dice=result["dice"], best_epoch=result["best_epoch"])
    return result


def _final_model(run: _Run, report, *, provenance, notice) -> tuple[LayersModel | None, bool]:
    """Retrain on all sections for the CV's epoch count (or reuse a finished one)."""
    config = run.config
    final_epochs = report["final_epochs"]
    existing = existing_final(run.out_dir, run.fingerprint)
    if existing is not None:
        run.emit("final_skipped", epochs=final_epochs)
        return existing, False
    if run.budget.exhausted():
        run.emit("stopped_by_time", "time budget spent before the final model", fold=None)
        return None, True
    run.emit("final_start", epochs=final_epochs, n_train=len(run.sections))
    fit = run.fit(
        run.sections,
        None,
        seed=config.seed * 1000 + 999,
        fold=None,
        name="checkpoint_final",
        config=replace(config, epochs=final_epochs),
        schedule_epochs=config.epochs,
    )
    training = _training_record(
        run,
        provenance,
        final_model=(
            f"retrained on all {len(run.sections)} sections for {final_epochs} epochs "
            + ("(median best epoch of the CV folds)" if config.folds else "(no CV)")
        ),
        final_epochs=final_epochs,
    )
    if fit.stopped_by_time:
        training.update(stopped_by_time=True, epochs_run=fit.epochs_run)
        run.emit("stopped_by_time", "time budget spent in the final model", fold=None)
    model = run.model(fit.network)
    scores = {"cv": report["summary"], "cv_folds": config.folds} if config.folds else {}
    save_layers_model(run.out_dir, model, training=training, scores=scores, notice=notice)
    return model, fit.stopped_by_time


def _holdout_model(run: _Run, report, fold: dict, provenance, notice):
    """The hold-out split's best-validation network is the delivered model."""
    model = load_layers_model(run.folds_dir / "fold_0")
    stopped = bool(fold.get("stopped_by_time"))
    training = _training_record(
        run,
        provenance,
        final_model=(
            f"best-validation network of a subject-grouped hold-out split "
            f"({fold['n_train']} training / {fold['n_val']} validation sections)"
        ),
        final_epochs=fold["best_epoch"],
    )
    if stopped:
        training.update(stopped_by_time=True, epochs_run=fold["epochs_run"])
    model = run.model_from(model)
    scores = {"holdout": report["summary"], "cv_folds": 1}
    save_layers_model(run.out_dir, model, training=training, scores=scores, notice=notice)
    if _calibrate_on_validation(run, model, fold) is not None:
        model = load_layers_model(run.out_dir)  # its manifest now holds the threshold
    return model, stopped


def _calibrate_on_validation(run: _Run, model: LayersModel, fold: dict) -> dict | None:
    """Recalibrate the DEJ-uncertainty threshold on the clean validation sections.

    Clean: no indeterminate (255) band in the mask, i.e. no annotated disruption. The
    hold-out model never trained on these sections, so their entropy is what new
    images will show (:func:`~skinoct.layers.calibrate_uncertainty`). Returns the
    calibration written to the manifest, or None (with a warning) when no clean
    validation section shows a DEJ.
    """
    import warnings

    from skinoct.errors import InputError
    from skinoct.io import INDETERMINATE, read_image, read_mask
    from skinoct.layers._calibration import calibrate_uncertainty, write_uncertainty_calibration

    by_id = {r.id: r for r in run.dataset.records}
    records = [by_id[s["id"]] for s in fold.get("sections", []) if s["id"] in by_id]
    images = [
        read_image(r.image, axes="zx")
        for r in records
        if not (read_mask(r.mask, axes="zx", allow_indeterminate=True).data == INDETERMINATE).any()
    ]
    calibration, reason = None, "no clean validation section"
    if images:
        try:
            calibration = calibrate_uncertainty(
                model, images, device=str(run.device),
                computed_on=f"{len(images)} clean validation sections of the hold-out split "
                "(no indeterminate band), by layers train",
            )  # fmt: skip
        except InputError as exc:  # no section with a DEJ the model finds
            reason = str(exc)
    if calibration is None:
        warnings.warn(
            f"DEJ-uncertainty threshold not recalibrated ({reason}); the model uses the "
            "default threshold (scripts/calibrate_layers.py calibrates it later)",
            stacklevel=3,
        )
        return None
    if calibration["n_sections"] < 20:
        calibration["note"] = "fewer than 20 sections: a rough quantile"
    write_uncertainty_calibration(run.out_dir, calibration)
    run.emit("calibrated", **{k: calibration[k] for k in ("dej_entropy_threshold", "n_sections")})
    return calibration


def _training_record(run: _Run, provenance, **extra) -> dict[str, Any]:
    """The manifest's ``training`` block: options, recipe, data, provenance."""
    return {
        **run.config.to_dict(),
        "device": str(run.device),
        "fingerprint": run.fingerprint,
        "recipe": run.recipe,
        **extra,
        "init": None if run.base is None else {
            "path": str(run.base.path), "sha256": run.base.weights_sha256
        },
        "dataset": dataset_summary(run.dataset),
        **(provenance or {}),
    }  # fmt: skip


def _workers(config: TrainConfig, device) -> int:
    if config.num_workers is not None:
        return int(config.num_workers)
    if device.type == "cuda":
        return max(0, min(8, (os.cpu_count() or 1) - 1))
    return 0
