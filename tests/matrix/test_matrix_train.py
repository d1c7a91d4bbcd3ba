"""Splits, augmentation, early stopping, and short training runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from skinoct.errors import InputError
from skinoct.matrix import (
    AUGMENTATIONS,
    EarlyStopping,
    TrainConfig,
    augment_tiles,
    load_matrix_model,
    predict_tiles,
    split_tiles,
    train_matrix,
)

SUBJECTS = np.repeat([f"s{i}" for i in range(9)], 5)  # 9 subjects × 5 tiles


def test_subject_split_keeps_subjects_and_copies_apart():
    split = split_tiles(SUBJECTS, split="subject", augment=9, seed=0)
    sets = {name: set(SUBJECTS[getattr(split, name)[:, 0]]) for name in ("train", "val", "test")}
    assert not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    assert not sets["train"] & sets["val"]
    assert len(sets["test"]) == 3  # 1/3 of 9 subjects
    assert split.summary["test_tiles_also_in_train"] == 0
    # training tiles are augmented ×9; validation and test tiles are used as they are
    assert len(split.train) == 9 * np.unique(split.train[:, 0]).size
    assert (split.test[:, 1] == 0).all() and (split.val[:, 1] == 0).all()


def test_random_paper_split_leaks_copies_and_subjects():
    split = split_tiles(SUBJECTS, split="random-paper", augment=9, seed=0)
    total = len(SUBJECTS) * 9
    assert len(split.test) == round(total / 3)  # 2/3 : 1/3 of the augmented images
    assert len(split.train) + len(split.val) + len(split.test) == total
    # rotated copies of most test tiles were seen in training
    assert split.summary["test_tiles_also_in_train"] > 0.9 * split.summary["tiles"]["test"]
    assert split.summary["test_subjects_also_in_train"] == 9


def test_split_errors():
    with pytest.raises(InputError, match="at least 3 subjects"):
        split_tiles(["a", "a", "b"], split="subject")
    with pytest.raises(InputError, match="split must be"):
        split_tiles(SUBJECTS, split="kfold")


def test_augmentations():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    tile = x[:1].repeat(9, 1, 1, 1)
    out = augment_tiles(tile, range(9))
    torch.testing.assert_close(out[0], tile[0])
    torch.testing.assert_close(
        out[1], torch.from_numpy(np.rot90(tile[0].numpy(), 1, (1, 2)).copy())
    )
    torch.testing.assert_close(out[4], tile[0].flip(-2))  # vertical mirroring: top ↔ bottom
    flat = {tuple(o.flatten().tolist()) for o in out}
    assert len(flat) == 9 and len(AUGMENTATIONS) == 9  # nine distinct copies
    # rot45 keeps the range (reflected border, bilinear)
    assert out[8].min() >= tile.min() - 1e-4 and out[8].max() <= tile.max() + 1e-4


def test_early_stopping_follows_keras_semantics():
    stopper = EarlyStopping(patience=3)
    losses = [1.0, 0.8, 0.85, 0.79, 0.8, 0.81, 0.82]
    stopped_at = None
    for epoch, loss in enumerate(losses):
        stopper.step(loss, epoch)
        if stopper.should_stop:
            stopped_at = epoch
            break
    assert stopper.best == 0.79 and stopper.best_epoch == 3 and stopped_at == 6


def test_short_training_run_writes_a_loadable_model(tmp_path, make_tile_dataset):
    data = make_tile_dataset(tmp_path / "data")
    lines = []
    config = TrainConfig(
        input_size=32, augment=2, batch_size=4, epochs=2, seed=0, bn_recalibration=8
    )
    result = train_matrix(data, tmp_path / "model", config=config, log=lines.append)
    assert any("from scratch" in line and "ImageNet weights" in line for line in lines)
    model = load_matrix_model(tmp_path / "model")
    manifest = model.manifest
    assert manifest["training"]["config"]["split"] == "subject"
    assert manifest["training"]["epochs_run"] == 2
    assert any("from scratch" in d for d in manifest["training"]["deviations_from_paper"])
    assert manifest["training"]["phases"][0]["phase"] == "all"
    history = pd.read_csv(tmp_path / "model" / "history.csv")
    # 6 subjects: 2 test, 1 validation, 3 × 4 training tiles × 2 copies = 24 images per epoch
    assert result.split["pairs"] == {"train": 24, "val": 4, "test": 8}
    assert len(history) == 2 and history["images"].eq(24).all()
    test_subjects = set(result.predictions["subject"])
    assert test_subjects == set(manifest["training"]["split"]["test_subjects"])
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["n"] == len(result.predictions) == 8  # 2 test subjects × 4 tiles
    assert not (tmp_path / "model" / "checkpoint.json").exists()
    p = predict_tiles(np.zeros((2, 3, 40, 40), np.uint8), model)
    assert p.shape == (2, 4)


def test_pretrained_training_runs_both_phases(tmp_path, make_tile_dataset):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v3_small

    data = make_tile_dataset(tmp_path / "data", n_subjects=4, per_subject=3)
    weights = tmp_path / "imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in mobilenet_v3_small().state_dict().items()}, weights)
    config = TrainConfig(
        weights_file=str(weights),
        input_size=32,
        augment=1,
        batch_size=4,
        epochs=1,
        split="random-paper",
    )
    lines = []
    train_matrix(data, tmp_path / "model", config=config, log=lines.append)
    phases = load_matrix_model(tmp_path / "model").manifest["training"]["phases"]
    assert [(p["phase"], p["keras_layers_frozen"]) for p in phases] == [
        ("head", 235),
        ("fine_tune", 100),
    ]
    assert phases[0]["trainable_params"] == 1024 * 4 + 4  # only the dense layer
    assert any("loaded" in line and "imagenet.safetensors" in line for line in lines)


def test_time_limit_stops_after_an_epoch(tmp_path, make_tile_dataset):
    data = make_tile_dataset(tmp_path / "data", n_subjects=3, per_subject=4)
    config = TrainConfig(input_size=32, augment=1, batch_size=4, epochs=5, max_time_s=1e-6)
    lines = []
    train_matrix(data, tmp_path / "model", config=config, log=lines.append)
    training = load_matrix_model(tmp_path / "model").manifest["training"]
    assert training["epochs_run"] == 1 and training["stopped_by_time"]
    assert any("time limit" in line for line in lines)


def _interrupt_second_epoch(monkeypatch):
    from skinoct.matrix import _train

    original = _train.EarlyStopping.step
    calls = {"n": 0}

    def step(self, loss, epoch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, loss, epoch)

    monkeypatch.setattr(_train.EarlyStopping, "step", step)
    return lambda: monkeypatch.setattr(_train.EarlyStopping, "step", original)


def test_cosine_schedule_follows_the_half_cosine_per_batch(tmp_path, make_tile_dataset):
    data = make_tile_dataset(tmp_path / "data")
    config = TrainConfig(
        input_size=32, augment=2, batch_size=4, epochs=2, lr=1e-3, lr_schedule="cosine"
    )
    train_matrix(data, tmp_path / "model", config=config, log=lambda _: None)
    history = pd.read_csv(tmp_path / "model" / "history.csv")
    # 24 images per epoch = 6 steps; T_max = 12 steps: lr(k) = 1e-3 (1 + cos(π k / 12)) / 2
    expected = [1e-3 * (1 + math.cos(math.pi * k / 12)) / 2 for k in (6, 12)]
    np.testing.assert_allclose(history["lr"], expected, atol=1e-12)
    manifest = load_matrix_model(tmp_path / "model").manifest
    assert manifest["training"]["config"]["lr_schedule"] == "cosine"


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_resume_continues_from_the_checkpoint(tmp_path, make_tile_dataset, monkeypatch, schedule):
    data = make_tile_dataset(tmp_path / "data", n_subjects=3, per_subject=4)
    config = TrainConfig(input_size=32, augment=1, batch_size=4, epochs=3, lr_schedule=schedule)
    restore = _interrupt_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_matrix(data, tmp_path / "model", config=config, log=lambda _: None)
    restore()
    assert (tmp_path / "model" / "checkpoint.safetensors").is_file()
    assert not (tmp_path / "model" / "model.json").exists()
    with pytest.raises(InputError, match="other options"):
        other = TrainConfig(**{**config.__dict__, "lr": 0.01})
        train_matrix(data, tmp_path / "model", config=other, resume=True, log=lambda _: None)
    lines = []
    train_matrix(data, tmp_path / "model", config=config, resume=True, log=lines.append)
    assert any("resuming phase 1 at epoch 2" in line for line in lines)
    history = pd.read_csv(tmp_path / "model" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert not (tmp_path / "model" / "checkpoint.json").exists()
    if schedule == "cosine":  # the restored scheduler carries on where it stopped
        expected = [1e-3 * (1 + math.cos(math.pi * e / 3)) / 2 for e in (1, 2, 3)]
        np.testing.assert_allclose(history["lr"], expected, atol=1e-12)


def test_config_validation():
    with pytest.raises(InputError, match="augment must be"):
        TrainConfig(augment=10)
    with pytest.raises(InputError, match="split must be"):
        TrainConfig(split="kfold")
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(InputError, match="not both"):
        TrainConfig(weights="imagenet", weights_file="w.pth")


def test_training_needs_subjects_for_the_subject_split(tmp_path, make_tile_dataset):
    data = make_tile_dataset(tmp_path / "data")
    (data / "tiles.csv").unlink()
    with pytest.raises(InputError, match="subject"):
        train_matrix(data, tmp_path / "m", config=TrainConfig(input_size=32, epochs=1))


def test_recalibrated_batch_norm_holds_the_exact_batch_statistics():
    from skinoct.matrix import MatrixNet, recalibrate_batch_norm, set_phase

    torch.manual_seed(0)
    net = MatrixNet()
    set_phase(net, "fine_tune", fine_tune_at=100)
    frozen_bn = net.features[0][1]
    frozen_before = frozen_bn.running_mean.clone()
    batches = [torch.randn(8, 3, 32, 32) for _ in range(3)]
    seen = []
    hook = net.features[12][0].register_forward_hook(lambda m, i, out: seen.append(out))
    assert recalibrate_batch_norm(net, batches) > 0
    hook.remove()
    # The last conv's BN (trainable) now holds the mean of its inputs over all batches.
    expected = torch.cat(seen).mean(dim=(0, 2, 3))
    torch.testing.assert_close(net.features[12][1].running_mean, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(frozen_bn.running_mean, frozen_before)  # frozen: untouched
    assert net.features[12][1].momentum == 0.01  # momentum restored
