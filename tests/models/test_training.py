"""The shared training skeleton: events, config checks, stopping, checkpoints, budget."""

from __future__ import annotations

import math

import pytest
import torch

from skinoct.errors import InputError
from skinoct.models import (
    BestWeights,
    Budget,
    EarlyStopping,
    Emitter,
    FitState,
    TrainEvent,
    check_choice,
    check_positive,
    config_matches,
    fit_state,
    load_checkpoint,
    remove_checkpoint,
    restore_fit_state,
    run_epochs,
    save_checkpoint,
)


def test_event_reads_like_the_old_dict_events():
    event = TrainEvent("epoch", "epoch 1 done", {"epoch": 1, "loss": 0.5})
    assert event["event"] == "epoch" and event["loss"] == 0.5 and "loss" in event
    assert event.get("missing", 3) == 3
    assert event.to_dict() == {"event": "epoch", "epoch": 1, "loss": 0.5, "message": "epoch 1 done"}


def test_emitter_sends_events_and_log_lines():
    events, lines = [], []
    emit = Emitter(events.append, log=lines.append)
    emit("step", step=1)
    emit.say("hello")
    assert [e.kind for e in events] == ["step", "log"] and lines == ["hello"]


@pytest.mark.parametrize(
    ("value", "kwargs", "ok"),
    [
        (1, {}, True),
        (0, {}, False),
        (0, {"zero": True}, True),
        (2.5, {"integer": True}, False),
        (float("nan"), {}, False),
        (float("inf"), {}, False),
        (True, {}, False),
        ("3", {}, False),
    ],
)
def test_check_positive_raises_the_one_config_error(value, kwargs, ok):
    if ok:
        check_positive("x", value, **kwargs)
    else:
        with pytest.raises(InputError, match="x must be"):
            check_positive("x", value, **kwargs)


def test_check_choice_lists_the_choices():
    with pytest.raises(InputError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        check_choice("mode", "c", ("a", "b"))


def test_config_matches_ignores_run_only_keys():
    a, b = {"lr": 1, "device": "cpu"}, {"lr": 1, "device": "cuda"}
    assert config_matches(a, b, ignore=("device",)) and not config_matches(a, b)
    assert not config_matches({"lr": 1, "patch": (2, 2)}, {"lr": 1, "patch": [2, 3]})
    assert config_matches({"patch": (2, 2)}, {"patch": [2, 2]})  # JSON round trip


def test_early_stopping_counts_epochs_without_improvement():
    stopper = EarlyStopping(2, min_delta=0.1)
    assert stopper.step(1.0, 1) and not stopper.step(0.95, 2)  # within min_delta
    assert not stopper.should_stop and not stopper.step(1.2, 3) and stopper.should_stop
    assert stopper.best_epoch == 1
    other = EarlyStopping(2)
    other.load_state_dict(stopper.state_dict())
    assert other.should_stop and other.best == 1.0


def test_budget_stops_before_an_epoch_would_overrun():
    now = [0.0]
    budget = Budget(10.0, clock=lambda: now[0])
    now[0] = 7.0
    assert not budget.exhausted(2.0) and budget.exhausted(4.0)
    assert not Budget(None).exhausted(1e9)
    with pytest.raises(InputError, match="time_budget_s"):
        Budget(-1)


def _toy():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def train_epoch(_epoch):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return {"train_loss": float(loss)}

    return net, opt, sched, train_epoch


def test_run_epochs_keeps_the_best_weights_and_stops_early():
    net, _, _, train_epoch = _toy()
    losses = iter([3.0, 1.0, 2.0, 2.5, 0.1])
    kept = {}

    def validate(epoch):
        loss = next(losses)
        if epoch == 2:
            kept.update({k: v.clone() for k, v in net.state_dict().items()})
        return {"val_loss": loss}

    events = []
    state = FitState(EarlyStopping(2))
    out = run_epochs(
        state, epochs=5, train_epoch=train_epoch, validate=validate, net=net,
        emit=Emitter(events.append), tags={"fold": 0},
    )  # fmt: skip
    assert out.early_stopped and out.epochs_run == 4 and not out.stopped_by_time
    assert state.stopper.best_epoch == 2
    for k, v in net.state_dict().items():  # best (epoch 2) weights restored
        torch.testing.assert_close(v, kept[k])
    assert [e["epoch"] for e in events] == [1, 2, 3, 4] and events[0]["fold"] == 0


def test_run_epochs_stops_by_wall_clock():
    net, _, _, train_epoch = _toy()
    now = [0.0]

    def slow_epoch(epoch):
        now[0] += 10.0
        return train_epoch(epoch)

    state = FitState(EarlyStopping(5))
    budget = Budget(25.0, clock=lambda: now[0])
    out = run_epochs(state, epochs=10, train_epoch=slow_epoch, budget=budget)
    assert out.stopped_by_time and state.epoch == 2  # a 3rd epoch would end past 25 s


def test_checkpoint_round_trip_restores_optimizer_and_scheduler(tmp_path):
    net, opt, sched, train_epoch = _toy()
    state = FitState(EarlyStopping(3), BestWeights(net))
    run_epochs(state, epochs=2, train_epoch=train_epoch, validate=lambda e: {"val_loss": 1.0 / e})
    sched.step(0.5)
    save_checkpoint(tmp_path, fit_state(state, net=net, optimizer=opt, scheduler=sched, x=math.inf))
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "checkpoint.safetensors").is_file()
    saved = load_checkpoint(tmp_path)
    assert saved["x"] == math.inf
    net2, opt2, sched2, _ = _toy()
    fresh = FitState(EarlyStopping(3))
    restore_fit_state(saved, fresh, net=net2, optimizer=opt2, scheduler=sched2)
    assert fresh.epoch == 2 and len(fresh.history) == 2 and fresh.stopper.best == 0.5
    # optimizer state is keyed by parameter index (ints): it must come back, not be dropped
    assert set(opt2.state_dict()["state"]) == {0, 1}
    before, after = opt.state_dict()["state"], opt2.state_dict()["state"]
    for a, b in zip(before.values(), after.values(), strict=True):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"])
    assert sched2.state_dict() == sched.state_dict()
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, net2.state_dict()[k])
    remove_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path) is None


def test_checkpoint_pair_from_two_saves_is_refused(tmp_path):
    save_checkpoint(tmp_path / "a", {"w": torch.ones(2)})
    save_checkpoint(tmp_path / "b", {"w": torch.zeros(2)})
    (tmp_path / "b" / "checkpoint.safetensors").replace(tmp_path / "a" / "checkpoint.safetensors")
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint(tmp_path / "a")
