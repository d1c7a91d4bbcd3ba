"""Training: subject-grouped k-fold cross-validation, then the final model.

Each fold trains a fresh network (MONAI ``UNet``, ``DiceCELoss``) on augmented
patches, validates on whole sections every epoch, stops early on the validation
loss and keeps the best epoch's weights. Its Dice per layer is then measured on
the held-out sections at their own resolution, through the same inference path as
``skinoct layers segment``. Folds are written as they finish
(``MODEL_DIR/folds/fold_<k>.json``), so an interrupted run resumes after the last
completed fold.

The final model is retrained on all sections for the median best epoch of the
folds (a fold ensemble would cost k times the inference time); the CV scores in
its manifest estimate its accuracy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import InputError
from skinoct.io import LABEL_NAMES, write_json
from skinoct.layers._data import LayerDataset, discover_dataset, prepare_section
from skinoct.layers._evaluate import score_sections
from skinoct.layers._metrics import summarize_dice
from skinoct.layers._model import (
    DEFAULT_MODEL_SPACING_UM,
    DEFAULT_NORMALIZATION,
    LayersModel,
    load_layers_model,
    make_normalizer,
    resolve_device,
    save_layers_model,
)
from skinoct.layers._network import NetworkSpec, build_network, load_matching_weights

__all__ = ["TrainConfig", "TrainResult", "grouped_folds", "train_layers"]

CV_REPORT_NAME = "cv_report.json"
FOLDS_DIR = "folds"

Callback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_layers`.

    Attributes
    ----------
    folds : int
        Cross-validation folds grouped by subject (0 = no CV: train the final model
        for ``epochs`` epochs without validation).
    epochs : int
        Maximum epochs per fold (early stopping usually ends sooner).
    patience : int
        Epochs without a lower validation loss before a fold stops.
    batch_size : int
        Patches per optimisation step.
    patch : (int, int)
        Patch size ``(z, x)`` in pixels on the model grid; multiples of the network's
        divisor (16 by default).
    patches_per_section : int
        Patches drawn per training section per epoch.
    lr : float
        Adam learning rate at the start of the cosine schedule.
    weight_decay : float
        Adam weight decay.
    seed : int
        Seeds folds, patch sampling, augmentation and weight initialisation.
    device : {'auto', 'cpu', 'cuda'}
        Training device.
    num_workers : int or None
        Data-loader processes (None: 0 on the CPU, up to 8 with CUDA). Results are
        reproducible for a given value.
    network : NetworkSpec
        UNet arguments (ignored with ``init``, which brings its own).
    model_spacing_um : (float, float)
        Grid ``(dz, dx)`` the network runs on (ignored with ``init``).
    """

    folds: int = 5
    epochs: int = 60
    patience: int = 8
    batch_size: int = 8
    patch: tuple[int, int] = (256, 256)
    patches_per_section: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None
    network: NetworkSpec = field(default_factory=NetworkSpec)
    model_spacing_um: tuple[float, float] = DEFAULT_MODEL_SPACING_UM

    def __post_init__(self) -> None:
        def positive(name, value, kind=int):
            if not isinstance(value, (int, float)) or kind(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")

        if not isinstance(self.folds, int) or self.folds < 0 or self.folds == 1:
            raise ValueError(f"folds must be 0 (no cross-validation) or >= 2, got {self.folds!r}")
        for name in ("epochs", "patience", "batch_size", "patches_per_section"):
            positive(name, getattr(self, name))
        for name in ("lr",):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        patch = tuple(int(p) for p in self.patch)
        if len(patch) != 2 or min(patch) < 1:
            raise ValueError(f"patch must be two positive sizes (z, x), got {self.patch!r}")
        d = self.network.divisor
        if any(p % d for p in patch):
            raise ValueError(
                f"patch sizes must be multiples of {d} (the network's strides), got {patch}"
            )
        spacing = tuple(float(s) for s in self.model_spacing_um)
        if len(spacing) != 2 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"model_spacing_um must be two positive values, got {spacing}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")
        object.__setattr__(self, "patch", patch)
        object.__setattr__(self, "model_spacing_um", spacing)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["network"] = self.network.to_dict()
        out["patch"] = list(self.patch)
        out["model_spacing_um"] = list(self.model_spacing_um)
        return out


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_layers` returns."""

    model_dir: Path
    model: LayersModel = field(repr=False)
    cv_report: dict[str, Any] = field(repr=False)


def grouped_folds(subjects: Sequence[str], n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, validation)`` index arrays of k folds that never split a subject.

    Uses :class:`sklearn.model_selection.GroupKFold` (deterministic, balanced fold
    sizes).

    Raises
    ------
    InputError
        With fewer distinct subjects than folds.
    """
    from sklearn.model_selection import GroupKFold

    subjects = np.asarray(subjects)
    n_groups = len(np.unique(subjects))
    if n_groups < n_folds:
        raise InputError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} subjects, "
            f"the dataset has {n_groups}"
        )
    splitter = GroupKFold(n_splits=n_folds)
    index = np.arange(len(subjects))
    return [(tr, va) for tr, va in splitter.split(index, groups=subjects)]


def train_layers(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    init: str | Path | None = None,
    restart: bool = False,
    provenance: dict[str, Any] | None = None,
    notice: str | None = None,
    callback: Callback | None = None,
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
        Training options (defaults: 5 folds, up to 60 epochs).
    init : str or Path, optional
        Model directory to start from (fine-tuning): its architecture, model spacing
        and normalisation are kept; output layers that do not fit a different
        class set are re-initialised, with a warning.
    restart : bool
        Discard completed folds of an earlier run in ``out_dir`` instead of resuming.
    provenance : dict, optional
        Extra facts stored under ``training`` in the manifest (e.g.
        ``{"synthetic_data": True}``).
    notice : str, optional
        Caveat stored in the manifest and shown when the model is used.
    callback : callable, optional
        Called with a dict for each event (``event`` key: ``'data'``, ``'fold_start'``,
        ``'step'``, ``'epoch'``, ``'fold_done'``, ``'fold_skipped'``, ``'final_start'``,
        ``'done'``); the CLI draws its progress bars from them.

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
    config = config or TrainConfig()
    emit = callback or (lambda _event: None)
    out_dir = Path(out_dir)
    dataset = discover_dataset(data_dir)
    base = load_layers_model(init) if init is not None else None
    if base is not None:
        config = replace(
            config,
            network=base.spec,
            model_spacing_um=base.spacing_um,
        )
        if any(p % base.spec.divisor for p in config.patch):
            raise ValueError(f"patch must be multiples of {base.spec.divisor} for this model")
    normalization = dict(base.normalization) if base is not None else dict(DEFAULT_NORMALIZATION)
    device = resolve_device(config.device)
    workers = _workers(config, device)

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
    _check_labels_occur(dataset, sections)
    emit(
        {
            "event": "data",
            "n_sections": len(sections),
            "n_subjects": len(set(dataset.subjects)),
            "label_values": list(dataset.label_values),
            "device": device,
        }
    )

    fingerprint = _fingerprint(dataset, config, base)
    folds_dir = out_dir / FOLDS_DIR
    _prepare_out_dir(out_dir, folds_dir, fingerprint, restart=restart)
    init_state = base.state_dict() if base is not None else None

    fold_results: list[dict[str, Any]] = []
    if config.folds:
        splits = grouped_folds(dataset.subjects, config.folds)
        for k, (tr, va) in enumerate(splits):
            done = folds_dir / f"fold_{k}.json"
            if done.is_file():
                result = json.loads(done.read_text(encoding="utf-8"))
                fold_results.append(result)
                emit(
                    {
                        "event": "fold_skipped",
                        "fold": k,
                        "folds": config.folds,
                        "mean_dice": result["dice"].get("mean_dice"),
                    }
                )
                continue
            emit(
                {
                    "event": "fold_start",
                    "fold": k,
                    "folds": config.folds,
                    "n_train": len(tr),
                    "n_val": len(va),
                }
            )
            net, history = _fit(
                [sections[i] for i in tr],
                [sections[i] for i in va],
                n_classes=len(dataset.label_values),
                config=config,
                device=device,
                workers=workers,
                seed=config.seed * 1000 + k,
                init_state=init_state,
                emit=emit,
                fold=k,
            )
            fold_model = LayersModel(
                config.network,
                net.state_dict(),
                label_values=dataset.label_values,
                spacing_um=config.model_spacing_um,
                normalization=normalization,
            )
            per_section = score_sections(
                fold_model,
                [dataset.records[i] for i in va],
                dataset.tissue_values,
                device=device,
            )
            summary = summarize_dice([s["dice"] for s in per_section])
            result = {
                "fold": k,
                "n_train": len(tr),
                "n_val": len(va),
                "val_subjects": sorted({dataset.records[i].subject for i in va}),
                "best_epoch": history["best_epoch"],
                "epochs_run": history["epochs_run"],
                "best_val_loss": history["best_val_loss"],
                "dice": {name: v["mean"] for name, v in summary.items()},
                "sections": per_section,
                "history": history["epochs"],
            }
            save_layers_model(
                folds_dir / f"fold_{k}",
                fold_model,
                training={"fold": k, "fingerprint": fingerprint},
            )
            write_json(done, result)
            fold_results.append(result)
            emit(
                {
                    "event": "fold_done",
                    "fold": k,
                    "folds": config.folds,
                    "dice": result["dice"],
                    "best_epoch": result["best_epoch"],
                }
            )

    report = _cv_report(dataset, config, fold_results, fingerprint)
    if config.folds:
        write_json(out_dir / CV_REPORT_NAME, report)

    final_epochs = report["final_epochs"]
    manifest_training = {
        **config.to_dict(),
        "device": device,
        "fingerprint": fingerprint,
        "final_model": (
            f"retrained on all {len(sections)} sections for {final_epochs} epochs "
            + ("(median best epoch of the CV folds)" if config.folds else "(no CV)")
        ),
        "final_epochs": final_epochs,
        "init": None if base is None else {"path": str(base.path), "sha256": base.weights_sha256},
        "dataset": {
            "path": str(dataset.root),
            "n_sections": len(dataset),
            "n_subjects": len(set(dataset.subjects)),
            "grouped_by_subject": dataset.grouped,
            "label_values": list(dataset.label_values),
        },
        **(provenance or {}),
    }
    existing = _existing_final(out_dir, fingerprint)
    if existing is not None:
        emit({"event": "final_skipped", "epochs": final_epochs})
        model = existing
    else:
        emit({"event": "final_start", "epochs": final_epochs, "n_train": len(sections)})
        net, _ = _fit(
            sections,
            None,
            n_classes=len(dataset.label_values),
            config=replace(config, epochs=final_epochs),
            device=device,
            workers=workers,
            seed=config.seed * 1000 + 999,
            init_state=init_state,
            emit=emit,
            fold=None,
            schedule_epochs=config.epochs,
        )
        model = LayersModel(
            config.network,
            net.state_dict(),
            label_values=dataset.label_values,
            spacing_um=config.model_spacing_um,
            normalization=normalization,
        )
        scores = {"cv": report["summary"], "cv_folds": config.folds} if config.folds else {}
        save_layers_model(out_dir, model, training=manifest_training, scores=scores, notice=notice)
    emit({"event": "done", "model_dir": str(out_dir), "summary": report.get("summary")})
    return TrainResult(model_dir=out_dir, model=model, cv_report=report)


# ------------------------------------------------------------------------ internals


def _workers(config: TrainConfig, device: str) -> int:
    if config.num_workers is not None:
        return int(config.num_workers)
    if device.startswith("cuda"):
        return max(0, min(8, (os.cpu_count() or 1) - 1))
    return 0


def _check_labels_occur(dataset: LayerDataset, sections) -> None:
    seen = np.zeros(len(dataset.label_values), bool)
    for s in sections:
        seen[np.unique(s.target)] = True
    absent = [dataset.label_values[i] for i in np.flatnonzero(~seen)]
    if absent:
        names = ", ".join(f"{v}={LABEL_NAMES[v]}" for v in absent)
        raise InputError(
            f"label(s) {names} never occur in any mask; declare the labels that are "
            'annotated in dataset.json, e.g. {"labels": [0, 2, 3]}',
            path=dataset.root,
        )


def _fingerprint(dataset: LayerDataset, config: TrainConfig, base) -> str:
    cfg = config.to_dict()
    for key in ("device", "num_workers"):
        cfg.pop(key, None)
    payload = {
        "config": cfg,
        "sections": [[r.id, r.subject] for r in dataset.records],
        "labels": list(dataset.label_values),
        "init": None if base is None else base.weights_sha256,
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prepare_out_dir(out_dir: Path, folds_dir: Path, fingerprint: str, *, restart: bool) -> None:
    run_file = folds_dir / "run.json"
    if restart and folds_dir.exists():
        shutil.rmtree(folds_dir)
    if run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint")
        if previous != fingerprint:
            raise InputError(
                "holds folds of a different training run (other data or options); "
                "use another --out or --restart to discard them",
                path=out_dir,
            )
        return
    folds_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"fingerprint": fingerprint})


def _existing_final(out_dir: Path, fingerprint: str) -> LayersModel | None:
    from skinoct.errors import ModelError

    if not (out_dir / "model.json").is_file():
        return None
    try:
        model = load_layers_model(out_dir)
    except ModelError:
        return None
    if model.manifest.get("training", {}).get("fingerprint") != fingerprint:
        return None
    return model


def _cv_report(dataset, config, fold_results, fingerprint) -> dict[str, Any]:
    tissue = [LABEL_NAMES[v] for v in dataset.tissue_values]
    if fold_results:
        per_fold = [{n: r["dice"].get(n) for n in tissue} for r in fold_results]
        summary = summarize_dice(per_fold)
        best = [int(r["best_epoch"]) for r in fold_results]
        final_epochs = max(1, round(float(np.median(best))))
    else:
        summary, final_epochs = {}, config.epochs
    return {
        "fingerprint": fingerprint,
        "folds": [
            {k: v for k, v in r.items() if k not in ("sections", "history")} for r in fold_results
        ],
        "layers": tissue,
        "summary": summary,
        "final_epochs": final_epochs,
        "config": config.to_dict(),
        "dataset": {
            "path": str(dataset.root),
            "n_sections": len(dataset),
            "n_subjects": len(set(dataset.subjects)),
            "grouped_by_subject": dataset.grouped,
            "label_values": list(dataset.label_values),
        },
        "per_section": [s for r in fold_results for s in r.get("sections", [])],
    }


def _fit(
    train,
    val,
    *,
    n_classes,
    config,
    device,
    workers,
    seed,
    init_state,
    emit,
    fold,
    schedule_epochs=None,
):
    """Train one network; return it (best-epoch weights) and its history."""
    import torch
    from monai.data import DataLoader
    from monai.losses import DiceCELoss

    from skinoct.layers._augment import TrainPatches

    torch.manual_seed(seed)
    net = build_network(config.network, n_classes)
    if init_state is not None:
        load_matching_weights(net, init_state)
    net = net.to(device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = max(1, math.ceil(len(train) * config.patches_per_section / config.batch_size))
    total_steps = per_epoch * (schedule_epochs or config.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)),
    )
    best = {"loss": math.inf, "epoch": 0, "state": None}
    history: list[dict[str, Any]] = []
    stale = 0
    for epoch in range(1, config.epochs + 1):
        patches = TrainPatches(
            train,
            patch=config.patch,
            length=per_epoch * config.batch_size,
            seed=seed * 1000 + epoch,
        )
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = DataLoader(
            patches,
            batch_size=config.batch_size,
            shuffle=False,
            num_workers=workers,
            generator=gen,
            pin_memory=device.startswith("cuda"),
        )
        net.train()
        losses = []
        for step, (x, y) in enumerate(loader, 1):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            emit(
                {
                    "event": "step",
                    "fold": fold,
                    "epoch": epoch,
                    "step": step,
                    "steps": per_epoch,
                    "loss": losses[-1],
                }
            )
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "lr": float(opt.param_groups[0]["lr"]),
        }
        if val:
            val_loss, dice = _validate(
                net, val, loss_fn, n_classes, device, divisor=config.network.divisor
            )
            record.update(val_loss=val_loss, val_dice=dice)
            if val_loss < best["loss"] - 1e-6:
                best = {
                    "loss": val_loss,
                    "epoch": epoch,
                    "state": copy.deepcopy(
                        {k: v.detach().cpu() for k, v in net.state_dict().items()}
                    ),
                }
                stale = 0
            else:
                stale += 1
        history.append(record)
        emit({"event": "epoch", "fold": fold, "epochs": config.epochs, **record})
        if val and stale >= config.patience:
            break
    if val and best["state"] is not None:
        net.load_state_dict(best["state"])
    net = net.cpu().eval()
    return net, {
        "best_epoch": best["epoch"] if val else config.epochs,
        "best_val_loss": best["loss"] if val else None,
        "epochs_run": len(history),
        "epochs": history,
    }


def _validate(net, sections, loss_fn, n_classes, device, *, divisor):
    """Mean validation loss and mean Dice (MONAI ``DiceMetric``) per class on the model grid."""
    import torch
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    from skinoct.layers._resample import pad_to_multiple

    metric = DiceMetric(include_background=True, reduction="mean_batch", ignore_empty=True)
    net.eval()
    losses = []
    with torch.inference_mode():
        for s in sections:
            z, x = s.image.shape
            inp = pad_to_multiple(torch.from_numpy(s.image)[None, None], divisor).to(device)
            logits = net(inp)[..., :z, :x]
            target = torch.from_numpy(s.target.astype(np.int64))[None, None].to(device)
            losses.append(float(loss_fn(logits, target)))
            pred = logits.argmax(1, keepdim=True)
            metric(one_hot(pred, n_classes), one_hot(target, n_classes))
    dice = metric.aggregate().cpu().tolist()
    net.train()
    return float(np.mean(losses)), [float(v) for v in dice]
