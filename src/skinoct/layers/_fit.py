"""One network fit of the layer-segmentation model on the shared training skeleton.

The task-specific parts live here — the UNet, ``DiceCELoss``, patch sampling, the
cosine learning-rate schedule and whole-section validation with MONAI ``DiceMetric``;
the epoch loop, early stopping, best weights, checkpoints and the wall-clock budget
come from :mod:`skinoct.models`.

Patch sampling is pluggable: ``sampler(sections, *, patch, length, seed)`` returns the
map-style dataset of one epoch's ``(image, label)`` patches
(default :class:`skinoct.layers._augment.TrainPatches`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from skinoct.layers._network import build_network, load_matching_weights
from skinoct.models import (
    Budget,
    EarlyStopping,
    Emitter,
    FitState,
    fit_state,
    load_checkpoint,
    remove_checkpoint,
    restore_fit_state,
    run_epochs,
    save_checkpoint,
)

__all__ = ["FitResult", "PatchSampler", "default_sampler", "fit_network"]

#: Smallest improvement of the validation loss that counts for early stopping.
MIN_DELTA = 1e-6


class PatchSampler(Protocol):
    """Builds one epoch's training patches: a map-style dataset of ``(image, label)``."""

    def __call__(
        self, sections: Sequence[Any], *, patch: Sequence[int], length: int, seed: int
    ): ...


def default_sampler(sections, *, patch, length: int, seed: int):
    """Uniformly drawn augmented patches (:class:`~skinoct.layers._augment.TrainPatches`)."""
    from skinoct.layers._augment import TrainPatches

    return TrainPatches(sections, patch=patch, length=length, seed=seed)


@dataclass(frozen=True)
class FitResult:
    """A fitted network (best-validation weights, on the CPU, eval mode) and its history."""

    network: Any
    best_epoch: int
    best_val_loss: float | None
    epochs_run: int
    history: list[dict[str, Any]]
    stopped_by_time: bool = False


@dataclass(frozen=True)
class _Job:
    config: Any
    device: Any
    workers: int
    seed: int
    sampler: PatchSampler
    steps_per_epoch: int


def fit_network(
    train,
    val,
    *,
    n_classes: int,
    config,
    device,
    workers: int,
    seed: int,
    init_state: dict[str, Any] | None = None,
    init_labels: Sequence[int] | None = None,
    label_values: Sequence[int] | None = None,
    emit: Emitter | None = None,
    fold: int | None = None,
    schedule_epochs: int | None = None,
    budget: Budget | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_name: str = "checkpoint",
    sampler: PatchSampler | None = None,
    time_schedule: bool = False,
) -> FitResult:
    """Train one UNet; resume from ``checkpoint_dir/checkpoint_name`` when present.

    ``init_state`` (fine-tuning) is loaded with
    :func:`~skinoct.layers._network.load_matching_weights`; with ``init_labels`` and
    ``label_values`` the output layers keep the initial model's weights of the classes
    both class sets share. ``val`` None trains all ``config.epochs`` epochs without
    validation (final model). The checkpoint is removed when the fit ends, kept when
    the budget stopped it.
    With ``time_schedule`` (and a limited ``budget``) the cosine learning rate decays
    over whichever runs out first, the epochs or the wall-clock budget, so a fit cut
    by its budget still ends at a low learning rate.
    """
    import torch

    from skinoct.layers._targets import layer_loss

    emit = emit or Emitter()
    torch.manual_seed(seed)
    net = build_network(config.network, n_classes)
    if init_state is not None:
        load_matching_weights(
            net,
            init_state,
            spec=config.network,
            source_labels=init_labels,
            target_labels=label_values,
        )
    net = net.to(device)
    loss_fn = layer_loss()  # DiceCE; targets blended across indeterminate (255) bands
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = max(1, math.ceil(len(train) * config.patches_per_section / config.batch_size))
    total = per_epoch * (schedule_epochs or config.epochs)
    timed = time_schedule and budget is not None and budget.seconds is not None

    def progress(step: int) -> float:
        done = min(step, total) / total
        return max(done, min(1.0, budget.elapsed / budget.seconds)) if timed else done

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress(s)))
    )
    state = FitState(EarlyStopping(config.patience, min_delta=MIN_DELTA))
    if checkpoint_dir is not None:
        saved = load_checkpoint(checkpoint_dir, name=checkpoint_name)
        if saved is not None:
            restore_fit_state(saved, state, net=net, optimizer=opt, scheduler=sched)
            torch.set_rng_state(saved["rng"])
            emit("resumed", f"resuming at epoch {state.epoch + 1}", fold=fold, epoch=state.epoch)
    job = _Job(config, device, workers, seed, sampler or default_sampler, per_epoch)

    def save(s: FitState) -> None:
        content = fit_state(s, net=net, optimizer=opt, scheduler=sched, rng=torch.get_rng_state())
        save_checkpoint(checkpoint_dir, content, name=checkpoint_name)

    outcome = run_epochs(
        state,
        epochs=config.epochs,
        train_epoch=lambda e: _train_epoch(net, train, opt, sched, loss_fn, job, e, fold, emit),
        validate=None if not val else lambda _e: _validate(net, val, loss_fn, n_classes, job),
        net=net,
        budget=budget,
        save=None if checkpoint_dir is None else save,
        emit=emit,
        tags={"fold": fold},
    )
    if checkpoint_dir is not None and not outcome.stopped_by_time:
        remove_checkpoint(checkpoint_dir, name=checkpoint_name)
    return FitResult(
        network=net.cpu().eval(),
        best_epoch=state.stopper.best_epoch if val else state.epoch,
        best_val_loss=state.stopper.best if val else None,
        epochs_run=len(state.history),
        history=[{k: v for k, v in r.items() if k != "best"} for r in state.history],
        stopped_by_time=outcome.stopped_by_time,
    )


def _train_epoch(net, sections, opt, sched, loss_fn, job: _Job, epoch, fold, emit) -> dict:
    """One pass over the epoch's patches; the record of the epoch."""
    import torch
    from monai.data import DataLoader

    config = job.config
    patches = job.sampler(
        sections,
        patch=config.patch,
        length=job.steps_per_epoch * config.batch_size,
        seed=job.seed * 1000 + epoch,
    )
    loader = DataLoader(
        patches,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=job.workers,
        generator=torch.Generator().manual_seed(job.seed * 1000 + epoch),
        pin_memory=job.device.type == "cuda",
    )
    net.train()
    losses = []
    for step, (x, y) in enumerate(loader, 1):
        x = x.to(job.device, non_blocking=True)
        y = y.to(job.device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        emit(
            "step",
            fold=fold,
            epoch=epoch,
            step=step,
            steps=job.steps_per_epoch,
            loss=losses[-1],
        )
    return {"train_loss": float(np.mean(losses)), "lr": float(opt.param_groups[0]["lr"])}


def _validate(net, sections, loss_fn, n_classes, job: _Job) -> dict:
    """Mean validation loss and mean Dice (MONAI ``DiceMetric``) per class on the model grid."""
    import torch
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    from skinoct.layers._resample import pad_to_multiple
    from skinoct.layers._targets import soft_targets

    metric = DiceMetric(include_background=True, reduction="mean_batch", ignore_empty=True)
    net.eval()
    losses = []
    with torch.inference_mode():
        for s in sections:
            z, x = s.image.shape
            inp = pad_to_multiple(torch.from_numpy(s.image)[None, None], job.config.network.divisor)
            logits = net(inp.to(job.device))[..., :z, :x]
            target = torch.from_numpy(s.target.astype(np.int64))[None, None].to(job.device)
            losses.append(float(loss_fn(logits, target)))
            pred = logits.argmax(1, keepdim=True)
            hard = soft_targets(target, n_classes).argmax(1, keepdim=True)  # 255 -> nearer class
            metric(one_hot(pred, n_classes), one_hot(hard, n_classes))
    dice = metric.aggregate().cpu().tolist()
    net.train()
    return {"val_loss": float(np.mean(losses)), "val_dice": [float(v) for v in dice]}
