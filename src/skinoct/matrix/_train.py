"""Training the grading model with the protocol of seed 002 §2.2.3, leak-free by default.

Paper protocol: 1,777 labelled tiles augmented ×9 by rotations and vertical
mirroring; 2/3 train, 1/3 test *at random after augmentation*; batch 32, sparse
categorical cross-entropy; phase 1 transfer learning (ImageNet base frozen, only
the dense output layer trains), Adam 1e-3, learning rate ×0.5 after 5 epochs
without validation-loss improvement, stop after 15, keep the best-validation-loss
weights; phase 2 fine-tuning with the first 100 Keras layers frozen, Adam 1e-4.

skinoct's default splits by *subject* before augmenting (rotated copies of one
tile, and tiles of one person, never straddle train and test) and takes the
validation set for early stopping from the training subjects, so the test set is
touched once. ``split='random-paper'`` reproduces the paper's split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.matrix._labels import GRADES
from skinoct.matrix._split import SplitIndices, split_tiles
from skinoct.matrix._train_config import AUGMENTATIONS, TrainConfig
from skinoct.models import (
    Budget,
    EarlyStopping,
    Emitter,
    TrainEvent,
    remove_checkpoint,
    resolve_device,
)

__all__ = [
    "AUGMENTATIONS",
    "EarlyStopping",
    "SplitIndices",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "augment_tiles",
    "recalibrate_batch_norm",
    "split_tiles",
    "train_matrix",
]

logger = logging.getLogger("skinoct.matrix")

PAPER_DEVIATIONS_SCRATCH = (
    "trained from scratch: one phase with every layer trainable and the phase-1 "
    "schedule; the paper started from ImageNet weights (transfer learning, then "
    "fine-tuning with the first 100 layers frozen)"
)


def augment_tiles(x, which):
    """Apply augmentation ``which[i]`` (index into :data:`AUGMENTATIONS`) to tile ``x[i]``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, S, S), float
    which : sequence of int, length N

    Returns
    -------
    torch.Tensor
        Same shape. "vflip" mirrors top↔bottom; rotations are counter-clockwise.
    """
    import torch
    import torch.nn.functional as F

    which = torch.as_tensor(which, device=x.device).long()
    out = x.clone()
    for k in torch.unique(which).tolist():
        sel = which == k
        part = x[sel]
        if k == 8:
            angle = math.pi / 4
            theta = torch.tensor(
                [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]],
                device=x.device,
                dtype=part.dtype,
            ).expand(part.shape[0], 2, 3)
            grid = F.affine_grid(theta, list(part.shape), align_corners=False)
            part = F.grid_sample(
                part, grid, mode="bilinear", padding_mode="reflection", align_corners=False
            )
        elif 0 <= k < 8:
            if k >= 4:
                part = part.flip(-2)
            part = torch.rot90(part, k % 4, dims=(-2, -1))
        else:
            raise InputError(f"augmentation index must be 0–8, got {k}")
        out[sel] = part
    return out


def recalibrate_batch_norm(net, batches) -> int:
    """Re-estimate the statistics of the trainable batch-norm layers ("precise BN").

    The running mean and variance of every batch-norm layer whose weights train
    are reset and replaced by the average over ``batches`` of the current weights'
    batch statistics; frozen layers keep theirs.

    Parameters
    ----------
    net : torch.nn.Module
    batches : iterable of torch.Tensor
        Network inputs (already normalised).

    Returns
    -------
    int
        Number of layers recalibrated.
    """
    import torch

    layers = [
        m
        for m in net.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        and m.weight is not None
        and m.weight.requires_grad
    ]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = net.training
    net.train()
    try:
        with torch.no_grad():
            for x in batches:
                net(x)
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        net.train(was_training)
    return len(layers)


@dataclass
class TrainResult:
    """What :func:`train_matrix` produced.

    Attributes
    ----------
    model_dir : Path
    metrics : GradingMetrics
        On the held-out test set.
    history : pandas.DataFrame
        One row per epoch: phase, epoch, losses, accuracies, learning rate, seconds.
    predictions : pandas.DataFrame
        Test-set predictions (``tile_id``, ``subject``, ``augmentation``, ``true``,
        ``pred``, ``p_1`` … ``p_4``, ``expected_grade``).
    split : dict
        Sizes of the sets and leakage counts.
    seconds : float
    images_seen : int
        Training images processed (forward + backward), for time estimates.
    """

    model_dir: Path
    metrics: object
    history: object
    predictions: object
    split: dict
    seconds: float
    images_seen: int


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def train_matrix(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    config: TrainConfig | None = None,
    resume: bool = False,
    provenance: dict | None = None,
    notice: str | None = None,
    progress: Callable | None = None,
    log: Callable[[str], None] | None = None,
    callback: Callable[[TrainEvent], None] | None = None,
) -> TrainResult:
    """Train a grading model on a tile dataset and evaluate it on held-out tiles.

    Parameters
    ----------
    data_dir : str or Path
        Tile dataset (``tiles/``, ``tiles.csv``, ``labels.csv``).
    out_dir : str or Path
        Model directory to write: ``model.safetensors`` + ``model.json``, plus
        ``history.csv``, ``test_predictions.csv``, ``metrics.json``; while training,
        ``checkpoint.safetensors`` + ``checkpoint.json`` (removed at the end, kept when
        the time limit stopped the run so that ``resume`` continues it).
    config : TrainConfig
        Options (paper defaults).
    resume : bool
        Continue from the checkpoint in ``out_dir`` (same data and options).
    provenance : dict, optional
        Stored in the manifest (e.g. that the data are phantom tiles).
    notice : str, optional
        One-line caveat stored in the manifest and shown by the CLI on use.
    progress : callable, optional
        ``progress(iterable, description=..., total=...)`` wrapping each epoch's
        batches (a progress bar).
    log : callable, optional
        Receives one line per event (default: the ``skinoct.matrix`` logger).
    callback : callable, optional
        Receives every :class:`~skinoct.models.TrainEvent` (``'log'``, ``'step'``,
        ``'epoch'``), the protocol shared with :func:`skinoct.layers.train_layers`.

    Returns
    -------
    TrainResult
        The model folder, test metrics, history and test predictions.

    Raises
    ------
    InputError
        Bad dataset or options; ``ModelError`` when pretrained weights cannot be had.
    """
    import torch

    from skinoct.matrix._fit import TileBatches, fit_phases

    config = config or TrainConfig()
    emit = Emitter(callback, log=log or logger.info)
    budget = Budget(config.max_time_s)
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    data, splits = _read_data(data_dir, config, emit)
    torch.manual_seed(config.seed)
    net, phases, pretrained = _build_network(config, emit)
    net.to(device)
    # channels-last is faster on CUDA and also on the CPU (100 vs 69 images/s per
    # training step on the 2-core build machine: bench_matrix.py --train-steps).
    net.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    targets = data.table["grade"].to_numpy(dtype=int) - 1
    batches = TileBatches(
        data.tiles, targets, normalization=config.normalization, device=device, seed=config.seed
    )
    fitted = fit_phases(
        net, phases, batches, splits, config=config, out_dir=out_dir, resume=resume,
        budget=budget, emit=emit, progress=progress,
    )  # fmt: skip
    result = _evaluate_and_save(
        net, batches, data, splits, fitted, config=config, out_dir=out_dir, device=device,
        pretrained=pretrained, provenance=provenance, notice=notice, budget=budget, emit=emit,
        data_dir=data_dir,
    )  # fmt: skip
    if not fitted.stopped_by_time:
        remove_checkpoint(out_dir)
    return result


def _read_data(data_dir, config: TrainConfig, emit: Emitter):
    """The labelled tiles and their train / validation / test split."""
    from skinoct.matrix._dataset import read_tile_dataset

    data = read_tile_dataset(
        data_dir,
        size=config.input_size,
        tie=config.tie,
        require_subject=config.split == "subject",
    )
    table = data.table
    if len(table) == 0:
        raise InputError("the dataset holds no labelled tiles", path=data_dir)
    grades = table["grade"].to_numpy(dtype=int)
    subjects = _subjects(table)
    splits = split_tiles(
        subjects.to_numpy(),
        split=config.split,
        test_fraction=config.test_fraction,
        val_fraction=config.val_fraction,
        augment=config.augment,
        seed=config.seed,
    )
    counts = {str(g): int((grades == g).sum()) for g in GRADES}
    emit.say(
        f"{len(table)} tiles ({counts}), {subjects.nunique()} subjects; split {config.split}: "
        f"{splits.summary['pairs']} images (train/val/test)"
    )
    if data.kappa is not None:
        emit.say(
            f"{len(data.raters)} raters, Fleiss' kappa {data.kappa:.3f}; training grade = "
            f"majority vote (ties: {config.tie})"
        )
    return data, splits


def _subjects(table):
    return table["subject"] if "subject" in table.columns else table["tile_id"]


def _build_network(config: TrainConfig, emit: Emitter):
    """The network (pretrained weights loaded when asked) and its phases."""
    from skinoct.matrix._network import MatrixNet, load_pretrained

    net = MatrixNet(head=config.head, num_classes=len(GRADES))
    if not config.pretrained:
        emit.say("no pretrained weights: " + PAPER_DEVIATIONS_SCRATCH)
        return net, [("all", config.lr)], None
    pretrained = load_pretrained(
        net,
        weights="imagenet" if config.weights == "imagenet" else None,
        weights_file=config.weights_file,
    )
    line = f"loaded {pretrained['loaded']} pretrained tensors from {pretrained['source']}"
    if pretrained["missing"]:
        line += f"; missing {len(pretrained['missing'])}: {pretrained['missing'][:3]}"
    if pretrained["ignored"]:
        line += f"; ignored {len(pretrained['ignored'])} (ImageNet classifier)"
    emit.say(line)
    return net, [("head", config.lr), ("fine_tune", config.fine_tune_lr)], pretrained


def _test_predictions(net, batches, data, splits):
    """Held-out evaluation, touched once after training: metrics and the predictions table."""
    import pandas as pd
    import torch

    from skinoct.matrix._evaluate import evaluate_predictions

    table = data.table
    logits = batches.logits(net, splits.test)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    pred = probs.argmax(1) + 1
    true = table["grade"].to_numpy(dtype=int)[splits.test[:, 0]]
    predictions = pd.DataFrame(
        {
            "tile_id": table["tile_id"].to_numpy()[splits.test[:, 0]],
            "subject": _subjects(table).to_numpy()[splits.test[:, 0]],
            "augmentation": [AUGMENTATIONS[k] for k in splits.test[:, 1]],
            "true": true,
            "pred": pred,
        }
    )
    for j, g in enumerate(GRADES):
        predictions[f"p_{g}"] = probs[:, j]
    predictions["expected_grade"] = probs @ np.asarray(GRADES, dtype=float)
    return evaluate_predictions(true, pred), predictions


def _evaluate_and_save(net, batches, data, splits, fitted, *, config, out_dir, device,
                       pretrained, provenance, notice, budget, emit, data_dir):  # fmt: skip
    """Evaluate on the test set; write the model, history, predictions and metrics."""
    import pandas as pd
    import torch

    from skinoct.io import write_json, write_text
    from skinoct.matrix._model import Preprocessing, save_matrix_model

    metrics, predictions = _test_predictions(net, batches, data, splits)
    seconds = budget.elapsed
    emit.say(
        f"test ({config.split} split, {metrics.n} images): accuracy {metrics.accuracy:.3f}, "
        f"macro precision {metrics.macro_precision:.3f}, macro recall {metrics.macro_recall:.3f}, "
        f"quadratic kappa {metrics.quadratic_kappa:.3f}"
    )
    deviations = [] if config.pretrained else [PAPER_DEVIATIONS_SCRATCH]
    if config.split == "subject":
        deviations.append(
            "split by subject before augmentation; validation subjects held out "
            "for early stopping (paper: random split after augmentation)"
        )
    if fitted.stopped_by_time:
        deviations.append(f"stopped by the time limit ({config.max_time_s:g} s)")
    subjects = _subjects(data.table)
    images_seen = sum(int(h.get("images", 0)) for h in fitted.history)
    training = {
        "config": asdict(config),
        "data": {
            "path": str(Path(data_dir)),
            "tiles": len(data.table),
            "grades": {str(g): int((data.table["grade"] == g).sum()) for g in GRADES},
            "subjects": int(subjects.nunique()),
            "raters": list(data.raters),
            "fleiss_kappa": data.kappa,
        },
        "split": splits.summary,
        "phases": fitted.phases,
        "pretrained": pretrained and {k: pretrained[k] for k in ("source", "loaded")},
        "epochs_run": len(fitted.history),
        "images_seen": images_seen,
        "stopped_by_time": fitted.stopped_by_time,
        "device": _device_name(device),
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "deviations_from_paper": deviations,
        "augmentations": list(AUGMENTATIONS[: config.augment]),
    }
    preprocessing = Preprocessing(input_size=config.input_size, normalization=config.normalization)
    net.cpu().eval()
    save_matrix_model(
        out_dir, net, preprocessing=preprocessing, training=training,
        scores={"test": metrics.to_dict()}, provenance=provenance or {}, notice=notice,
    )  # fmt: skip
    history = pd.DataFrame(fitted.history)
    write_text(out_dir / "history.csv", history.to_csv(index=False, float_format="%.6g"))
    predictions_csv = predictions.to_csv(index=False, float_format="%.5g")
    write_text(out_dir / "test_predictions.csv", predictions_csv)
    write_json(out_dir / "metrics.json", {"split": splits.summary, **metrics.to_dict()})
    return TrainResult(
        model_dir=out_dir, metrics=metrics, history=history, predictions=predictions,
        split=splits.summary, seconds=seconds, images_seen=images_seen,
    )  # fmt: skip


def with_overrides(config: TrainConfig, **changes) -> TrainConfig:
    """A copy of ``config`` with the non-None ``changes`` applied."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
