"""The grading network's training phases on the shared training skeleton.

The task-specific parts live here — tiles on the device turned into augmented,
normalised batches, cross-entropy, "precise BN" recalibration, the Adam phases of
seed 002 with their plateau or cosine schedule; the epoch loop, early stopping, best
weights, checkpoints (safetensors + JSON) and the wall-clock budget come from
:mod:`skinoct.models`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import InputError
from skinoct.models import (
    BestWeights,
    Budget,
    EarlyStopping,
    Emitter,
    FitState,
    config_matches,
    fit_state,
    load_checkpoint,
    restore_fit_state,
    run_epochs,
    save_checkpoint,
)

__all__ = ["PhaseResult", "TileBatches", "fit_phases"]

#: Config fields that may change between a run and its resumption.
_RESUMABLE = ("device", "max_time_s")


class TileBatches:
    """Tiles held on the training device, served as network-ready batches.

    Parameters
    ----------
    tiles : ndarray, shape (N, 3, S, S), uint8
    targets : ndarray of int, shape (N,)
        Class index (grade − 1) per tile.
    normalization : str
        The model's input normalisation.
    device : torch.device
    seed : int
        Seeds the batch order and the BN-recalibration sample.
    """

    def __init__(self, tiles, targets, *, normalization: str, device, seed: int) -> None:
        import torch

        self.tiles = torch.from_numpy(tiles).to(device)
        self.targets = torch.from_numpy(targets).to(device)
        self.targets_cpu = torch.from_numpy(targets)
        self.normalization = normalization
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )

    def batch(self, pairs: np.ndarray):
        """Network input and targets of (tile index, augmentation index) pairs."""
        import torch

        from skinoct.matrix._model import normalize_batch
        from skinoct.matrix._train import augment_tiles

        index = torch.as_tensor(pairs[:, 0], device=self.device)
        x = self.tiles[index].float()
        if (pairs[:, 1] != 0).any():
            x = augment_tiles(x, pairs[:, 1])
        x = normalize_batch(x, self.normalization)
        return x.contiguous(memory_format=torch.channels_last), self.targets[index]

    def shuffled(self, pairs: np.ndarray) -> np.ndarray:
        import torch

        return pairs[torch.randperm(len(pairs), generator=self.generator).numpy()]

    def logits(self, net, pairs: np.ndarray, *, batch: int = 256) -> np.ndarray:
        """Float32 logits of ``pairs`` in eval mode."""
        import torch

        net.eval()
        out = []
        with torch.inference_mode(), self.autocast:
            for start in range(0, len(pairs), batch):
                x, _ = self.batch(pairs[start : start + batch])
                out.append(net(x).float().cpu())
        return torch.cat(out).numpy()

    def validate(self, net, pairs: np.ndarray) -> tuple[float, float]:
        """Cross-entropy and accuracy on ``pairs``."""
        import torch
        import torch.nn.functional as F

        logits = torch.from_numpy(self.logits(net, pairs))
        y = self.targets_cpu[pairs[:, 0]]
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())

    def recalibrate(self, net, pairs: np.ndarray, n: int) -> None:
        """Precise BN on ``n`` randomly chosen training images (none for ``n`` = 0)."""
        import torch

        from skinoct.matrix._train import recalibrate_batch_norm

        if n == 0:
            return
        pick = pairs[torch.randperm(len(pairs), generator=self.generator)[:n].numpy()]
        batches = (self.batch(pick[i : i + 64])[0] for i in range(0, len(pick), 64))
        with self.autocast:
            recalibrate_batch_norm(net, batches)


@dataclass
class PhaseResult:
    """What the training phases produced: the history rows, phase reports, and whether
    the time budget ended them."""

    history: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    stopped_by_time: bool


def fit_phases(
    net,
    phases: list[tuple[str, float]],
    data: TileBatches,
    splits,
    *,
    config,
    out_dir: Path,
    resume: bool,
    budget: Budget,
    emit: Emitter,
    progress: Callable | None = None,
) -> PhaseResult:
    """Run the phases (``(name, learning rate)``), resuming from a checkpoint in
    ``out_dir``; every phase ends with its best-validation weights."""
    saved = _resumed(out_dir, config, emit) if resume else None
    history: list[dict[str, Any]] = [] if saved is None else list(saved["previous"])
    reports: list[dict[str, Any]] = []
    stopped = False
    for index, (phase, lr) in enumerate(phases):
        if saved is not None and index < saved["phase"]:
            continue
        state, report, stopped = _run_phase(
            net, index, phase, lr, data, splits, config=config, out_dir=out_dir,
            saved=saved if saved is not None and index == saved["phase"] else None,
            budget=budget, emit=emit, progress=progress, previous=history, n_phases=len(phases),
        )  # fmt: skip
        reports.append(report)
        history = history + state.history
        stop_note = ", early stop" if state.stopper.should_stop else ""
        emit.say(
            f"phase '{phase}' done: best val loss {state.stopper.best:.4f} "
            f"at epoch {state.stopper.best_epoch}{stop_note}"
        )
        if stopped:
            emit.say(
                f"time limit of {config.max_time_s:g} s reached: "
                "stopping with the best weights so far"
            )
            break
        saved = None
    return PhaseResult(history, reports, stopped)


def _resumed(out_dir: Path, config, emit: Emitter):
    saved = load_checkpoint(out_dir)
    if saved is None:
        emit.say("no checkpoint to resume from; starting afresh")
        return None
    if not config_matches(saved["config"], asdict(config), ignore=_RESUMABLE):
        raise InputError(
            "checkpoint was written with other options; train without --resume",
            path=out_dir / "checkpoint.json",
        )
    emit.say(f"resuming phase {saved['phase'] + 1} at epoch {saved['epoch'] + 1}")
    return saved


def _run_phase(net, index, phase, lr, data, splits, *, config, out_dir, saved, budget, emit,
               progress, previous, n_phases):  # fmt: skip
    import torch

    from skinoct.matrix._network import set_phase

    report = set_phase(net, phase, fine_tune_at=config.fine_tune_at)
    report = {k: report[k] for k in report if not k.endswith("_tensors")}
    emit.say(
        f"phase {index + 1}/{n_phases} '{phase}': {report['keras_layers_frozen']} of "
        f"{report['keras_layers_total']} Keras base layers frozen, "
        f"{report['trainable_params']:,} trainable parameters, Adam lr {lr:g}"
    )
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    if config.lr_schedule == "cosine":
        steps = config.epochs * math.ceil(len(splits.train) / config.batch_size)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
        )
    state = FitState(EarlyStopping(config.early_stop_patience), BestWeights(net))
    if saved is not None:
        restore_fit_state(saved, state, net=net, optimizer=optimizer, scheduler=scheduler)

    def train_epoch(epoch: int) -> dict[str, Any]:
        return _train_epoch(net, phase, epoch, optimizer, scheduler, data, splits.train,
                            config=config, progress=progress, emit=emit)  # fmt: skip

    def validate(_epoch: int) -> dict[str, Any]:
        data.recalibrate(net, splits.train, config.bn_recalibration)
        val_loss, val_acc = data.validate(net, splits.val)
        if config.lr_schedule == "plateau":
            scheduler.step(val_loss)
        lr_now = optimizer.param_groups[0]["lr"]
        return {"val_loss": val_loss, "val_accuracy": val_acc, "lr": lr_now}

    def save(s: FitState) -> None:
        content = fit_state(s, net=net, optimizer=optimizer, scheduler=scheduler)
        content.update(phase=index, previous=previous, config=asdict(config))
        save_checkpoint(out_dir, content)

    outcome = run_epochs(
        state, epochs=config.epochs, train_epoch=train_epoch, validate=validate, net=net,
        budget=budget, save=save, emit=emit, describe=_describe,
    )  # fmt: skip
    return state, report, outcome.stopped_by_time


def _train_epoch(net, phase, epoch, optimizer, scheduler, data, train, *, config, progress, emit):
    import torch
    import torch.nn.functional as F

    net.train()
    order = data.shuffled(train)
    starts = range(0, len(order), config.batch_size)
    if progress is not None:
        starts = progress(starts, description=f"{phase} epoch {epoch}", total=len(starts))
    total_loss = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device)
    for step, start in enumerate(starts, 1):
        x, y = data.batch(order[start : start + config.batch_size])
        with data.autocast:
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if config.lr_schedule == "cosine":
            scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        emit("step", phase=phase, epoch=epoch, step=step, images=len(y))
    return {
        "phase": phase,
        "train_loss": float(total_loss) / len(order),
        "train_accuracy": float(correct) / len(order),
        "images": len(order),
    }


def _describe(row: dict[str, Any], improved: bool) -> str:
    return (
        f"{row['phase']} epoch {row['epoch']}: loss {row['train_loss']:.4f} "
        f"acc {row['train_accuracy']:.3f}"
        f" | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f} | lr {row['lr']:.2g}"
        f" | {row['seconds']:.1f} s" + (" *" if improved else "")
    )
