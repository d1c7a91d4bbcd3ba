"""The training skeleton shared by ``layers`` and ``matrix``.

Each task keeps its network, preprocessing, data and loss; this module holds what
every training run needs around them:

- :class:`TrainEvent` and :class:`Emitter` — one event protocol for progress and logs;
- config checks raising one error type (:class:`~skinoct.errors.InputError`);
- :class:`EarlyStopping`, :class:`BestWeights` and :class:`Budget` (wall clock);
- :func:`run_epochs` — the epoch loop: train, validate, early-stop, keep the best
  weights, checkpoint, stop by wall clock;
- :func:`fit_state` / :func:`restore_fit_state` — what a resumable checkpoint holds
  (saved as safetensors + JSON by :mod:`skinoct.models._checkpoint`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skinoct.errors import InputError

__all__ = [
    "BestWeights",
    "Budget",
    "EarlyStopping",
    "Emitter",
    "EpochOutcome",
    "FitState",
    "TrainEvent",
    "check_choice",
    "check_config",
    "check_positive",
    "config_matches",
    "fit_state",
    "restore_fit_state",
    "run_epochs",
]


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class TrainEvent:
    """One thing that happened during training.

    Attributes
    ----------
    kind : str
        ``'data'``, ``'fold_start'``, ``'step'``, ``'epoch'``, ``'log'``, ``'done'``, …
    message : str
        A human-readable line ('' for events that only feed progress bars).
    data : dict
        The event's values (``epoch``, ``loss``, …).

    Notes
    -----
    ``event["event"]`` is the kind and ``event[key]`` a value, so code written for the
    earlier dict events keeps working.
    """

    kind: str
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.kind if key == "event" else self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.kind if key == "event" else self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key == "event" or key in self.data

    def to_dict(self) -> dict[str, Any]:
        extra = {"message": self.message} if self.message else {}
        return {"event": self.kind, **self.data, **extra}


Callback = Callable[[TrainEvent], None]


class Emitter:
    """Sends :class:`TrainEvent` to a callback; ``log`` receives the non-empty messages."""

    def __init__(
        self, callback: Callback | None = None, *, log: Callable[[str], None] | None = None
    ) -> None:
        self.callback = callback
        self.log = log

    def __call__(self, kind: str, message: str = "", **data: Any) -> TrainEvent:
        event = TrainEvent(kind, message, data)
        if self.callback is not None:
            self.callback(event)
        if message and self.log is not None:
            self.log(message)
        return event

    def say(self, message: str) -> None:
        """Emit a ``'log'`` event carrying one line."""
        self("log", message)


# ------------------------------------------------------------------------ config checks


def check_config(ok: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``ok`` (the one config error)."""
    if not ok:
        raise InputError(message)


def check_positive(name: str, value: Any, *, integer: bool = False, zero: bool = False) -> None:
    """``value`` must be a finite number > 0 (≥ 0 with ``zero``), whole with ``integer``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if ok and integer:
        ok = float(value).is_integer()
    kind = "whole number" if integer else "number"
    bound = ">= 0" if zero else "positive"
    check_config(ok, f"{name} must be a {bound} {kind}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    check_config(value in choices, f"{name} must be one of {choices}, got {value!r}")


def config_matches(saved: Mapping[str, Any], current: Mapping[str, Any], *, ignore=()) -> bool:
    """True when two JSON-like configs agree on every key but ``ignore`` (resume check)."""
    import json

    def norm(cfg):
        return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in ignore}))

    return norm(saved) == norm(current)


# --------------------------------------------------------------- stopping and keeping


class EarlyStopping:
    """Stop after ``patience`` epochs without a validation loss below the best by
    more than ``min_delta``; remember the best epoch (Keras ``EarlyStopping``)."""

    def __init__(self, patience: int, *, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, loss: float, epoch: int) -> bool:
        """Record ``loss``; True when this epoch is the best so far."""
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(loss), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


class BestWeights:
    """A CPU copy of the weights of the best epoch so far."""

    def __init__(self, net=None) -> None:
        self.state: dict[str, Any] | None = None
        if net is not None:
            self.keep(net)

    def keep(self, net) -> None:
        self.state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    def restore(self, net) -> bool:
        """Load the kept weights into ``net``; False when nothing was kept."""
        if self.state is None:
            return False
        net.load_state_dict(self.state)
        return True


class Budget:
    """A wall-clock budget in seconds (None: unlimited), started on creation.

    :meth:`exhausted` says whether another unit of work of the given duration would
    end past the budget, so that a run stops *before* overrunning it.
    """

    def __init__(self, seconds: float | None, *, clock: Callable[[], float] | None = None):
        if seconds is not None:
            check_positive("time_budget_s", seconds)
        self.seconds = None if seconds is None else float(seconds)
        self.clock = clock or time.monotonic
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def exhausted(self, next_unit_s: float = 0.0) -> bool:
        return self.seconds is not None and self.elapsed + max(0.0, next_unit_s) > self.seconds


# ----------------------------------------------------------------------- the epoch loop


@dataclass
class FitState:
    """Progress of one fit: epochs done, history, early stopping, best weights."""

    stopper: EarlyStopping
    best: BestWeights = field(default_factory=BestWeights)
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EpochOutcome:
    """How :func:`run_epochs` ended."""

    epochs_run: int
    early_stopped: bool
    stopped_by_time: bool


def run_epochs(
    state: FitState,
    *,
    epochs: int,
    train_epoch: Callable[[int], dict[str, Any]],
    validate: Callable[[int], dict[str, Any]] | None = None,
    net=None,
    budget: Budget | None = None,
    save: Callable[[FitState], None] | None = None,
    emit: Emitter | None = None,
    describe: Callable[[dict[str, Any], bool], str] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> EpochOutcome:
    """Run epochs ``state.epoch + 1 … epochs``; restore the best weights at the end.

    Parameters
    ----------
    state : FitState
        Updated in place (a resumed run passes the restored state).
    epochs : int
        Last epoch (1-based).
    train_epoch : callable
        ``train_epoch(epoch) -> dict`` trains one epoch and returns its record
        (``train_loss``, …).
    validate : callable, optional
        ``validate(epoch) -> dict`` holding ``val_loss``; drives early stopping and
        the best weights. Without it every epoch runs and the last weights stay.
    net : torch.nn.Module, optional
        Whose best weights are kept and restored (needs ``validate``).
    budget : Budget, optional
        Stop once another epoch (as long as the mean so far) would overrun it.
    save : callable, optional
        ``save(state)`` after every epoch (a checkpoint).
    emit : Emitter, optional
        Receives an ``'epoch'`` event per epoch (with ``tags``), its message from
        ``describe(record, improved)``.
    """
    emit = emit or Emitter()
    stopped_by_time = False
    start = state.epoch
    durations: list[float] = []
    for epoch in range(start + 1, epochs + 1):
        if validate is not None and state.stopper.should_stop:
            break
        t0 = time.perf_counter()
        b0 = budget.clock() if budget is not None else 0.0
        record = {"epoch": epoch, **train_epoch(epoch)}
        improved = False
        if validate is not None:
            record.update(validate(epoch))
            improved = state.stopper.step(record["val_loss"], epoch)
            if improved and net is not None:
                state.best.keep(net)
        record["seconds"] = time.perf_counter() - t0
        record["best"] = improved
        durations.append(budget.clock() - b0 if budget is not None else record["seconds"])
        state.history.append(record)
        state.epoch = epoch
        message = describe(record, improved) if describe is not None else ""
        emit("epoch", message, **(tags or {}), epochs=epochs, **record)
        if save is not None:
            save(state)
        mean_epoch_s = sum(durations) / len(durations)
        if budget is not None and epoch < epochs and budget.exhausted(mean_epoch_s):
            stopped_by_time = True
            break
    if validate is not None and net is not None:
        state.best.restore(net)
    return EpochOutcome(
        epochs_run=state.epoch - start,
        early_stopped=validate is not None and state.stopper.should_stop,
        stopped_by_time=stopped_by_time,
    )


def fit_state(state: FitState, *, net, optimizer=None, scheduler=None, **extra: Any) -> dict:
    """A checkpoint's content: the fit's progress, weights, optimizer and scheduler."""
    return {
        "epoch": state.epoch,
        "history": state.history,
        "stopper": state.stopper.state_dict(),
        "best": state.best.state,
        "model": net.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        **extra,
    }


def restore_fit_state(
    checkpoint: Mapping[str, Any], state: FitState, *, net, optimizer=None, scheduler=None
) -> None:
    """Inverse of :func:`fit_state`: put a checkpoint back into a fresh fit."""
    net.load_state_dict(checkpoint["model"])
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    state.stopper.load_state_dict(checkpoint["stopper"])
    state.best.state = checkpoint.get("best")
    state.epoch = int(checkpoint["epoch"])
    state.history = list(checkpoint["history"])
