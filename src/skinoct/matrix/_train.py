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

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from skinoct.errors import InputError
from skinoct.matrix._labels import GRADES

__all__ = [
    "AUGMENTATIONS",
    "EarlyStopping",
    "SplitIndices",
    "TrainConfig",
    "TrainResult",
    "augment_tiles",
    "recalibrate_batch_norm",
    "split_tiles",
    "train_matrix",
]

logger = logging.getLogger("skinoct.matrix")

Split = Literal["subject", "random-paper"]
SPLITS = ("subject", "random-paper")

#: The ×9 augmentation: the paper names "rotations and vertical mirroring" and a
#: factor of 9 (1,777 → 15,993 images). The eight right-angle rotations of the tile
#: and of its vertical mirror image are exact; the ninth copy is a 45° rotation
#: (bilinear, border reflected), skinoct's reading of the ninth rotation.
AUGMENTATIONS = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "vflip",
    "vflip+rot90",
    "vflip+rot180",
    "vflip+rot270",
    "rot45",
)

PAPER_DEVIATIONS_SCRATCH = (
    "trained from scratch: one phase with every layer trainable and the phase-1 "
    "schedule; the paper started from ImageNet weights (transfer learning, then "
    "fine-tuning with the first 100 layers frozen)"
)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training options; the defaults are the paper's values (seed 002 §2.2.3).

    Parameters
    ----------
    weights : {'none', 'imagenet'}
        Start from torchvision's ImageNet weights (downloaded once) or from
        scratch. ``weights_file`` gives local ImageNet weights instead.
    weights_file : str, optional
        A torchvision MobileNetV3-Small state dict (.safetensors or .pth).
    head : {'keras2', 'keras3'}
        Base/head variant (see :class:`~skinoct.matrix.MatrixNet`).
    normalization : {'tile', 'imagenet', 'paper'}
        Input normalisation (see :class:`~skinoct.matrix.Preprocessing`).
    input_size : int
        Network input side in px (224).
    split : {'subject', 'random-paper'}
        ``'subject'``: subjects are split first, then the training tiles are
        augmented. ``'random-paper'``: augment first, then split the copies at
        random (the paper; leaks rotated copies and subjects into the test set).
    test_fraction : float
        Share of the test set (1/3, as the paper).
    val_fraction : float
        Share of the remaining (training) part used for early stopping.
    augment : int
        Copies per training tile, 1–9 (:data:`AUGMENTATIONS`, in order).
    batch_size : int
        32.
    epochs : int
        Most epochs per phase (early stopping usually ends a phase sooner).
    lr, fine_tune_lr : float
        Adam learning rates of phase 1 (and from-scratch training) and phase 2.
    fine_tune_at : int
        Leading Keras base layers kept frozen in phase 2 (100).
    lr_schedule : {'plateau', 'cosine'}
        ``'plateau'`` (paper): ReduceLROnPlateau on the validation loss.
        ``'cosine'``: the learning rate follows a half cosine from ``lr`` to 0 over
        ``epochs`` epochs, updated after every batch (Loshchilov & Hutter, SGDR,
        ICLR 2017, without restarts); for runs with a fixed epoch budget, where
        the plateau rule would rarely fire. Not in the paper.
    lr_factor, lr_patience : float, int
        ReduceLROnPlateau on the validation loss: ×0.5 after 5 epochs.
    early_stop_patience : int
        Stop a phase after 15 epochs without validation-loss improvement.
    seed : int
        Seeds the split, the batch order and the initial weights.
    device : {'auto', 'cpu', 'cuda'}
        'auto' uses CUDA when available. On CUDA the forward pass runs in
        bfloat16 autocast.
    max_time_s : float, optional
        Wall-clock budget for the whole run; training stops after the epoch that
        exceeds it (keeping that phase's best weights), and says so.
    tie : str
        Tie rule of the rater majority vote.
    bn_recalibration : int
        Training images (with their augmentation) used to re-estimate the
        statistics of the trainable batch-norm layers before every validation
        ("precise BN"); 0 keeps the running averages. torchvision's MobileNetV3
        averages with momentum 0.01 (Keras: 0.001), far too slowly for weights that
        change quickly when training from scratch: the validation loss then jumps
        by an order of magnitude between epochs and early stopping picks an
        arbitrary epoch. Not in the paper (which started from ImageNet weights).
    """

    weights: Literal["none", "imagenet"] = "none"
    weights_file: str | None = None
    head: str = "keras2"
    normalization: str = "tile"
    input_size: int = 224
    split: Split = "subject"
    test_fraction: float = 1 / 3
    val_fraction: float = 0.2
    augment: int = 9
    batch_size: int = 32
    epochs: int = 200
    lr: float = 1e-3
    fine_tune_lr: float = 1e-4
    fine_tune_at: int = 100
    lr_schedule: Literal["plateau", "cosine"] = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 5
    early_stop_patience: int = 15
    seed: int = 0
    device: str = "auto"
    max_time_s: float | None = None
    tie: str = "median"
    bn_recalibration: int = 0

    def __post_init__(self) -> None:
        from skinoct.matrix._model import NORMALIZATIONS
        from skinoct.matrix._network import HEADS

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InputError(message)

        need(
            self.weights in ("none", "imagenet"),
            f"weights must be 'none' or 'imagenet', got {self.weights!r}",
        )
        need(
            not (self.weights == "imagenet" and self.weights_file),
            "give weights='imagenet' or a weights file, not both",
        )
        need(self.head in HEADS, f"head must be one of {HEADS}, got {self.head!r}")
        need(
            self.normalization in NORMALIZATIONS,
            f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}",
        )
        need(32 <= self.input_size <= 1024, f"input_size must be 32–1024, got {self.input_size}")
        need(self.split in SPLITS, f"split must be one of {SPLITS}, got {self.split!r}")
        need(
            0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}"
        )
        need(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        need(
            1 <= self.augment <= len(AUGMENTATIONS),
            f"augment must be 1–{len(AUGMENTATIONS)}, got {self.augment}",
        )
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        need(self.lr > 0 and self.fine_tune_lr > 0, "learning rates must be positive")
        need(0 < self.lr_factor < 1, f"lr_factor must be in (0, 1), got {self.lr_factor}")
        need(
            self.lr_schedule in ("plateau", "cosine"),
            f"lr_schedule must be 'plateau' or 'cosine', got {self.lr_schedule!r}",
        )
        need(self.lr_patience >= 0, f"lr_patience must be >= 0, got {self.lr_patience}")
        need(
            self.early_stop_patience >= 1,
            f"early_stop_patience must be >= 1, got {self.early_stop_patience}",
        )
        need(
            self.device in ("auto", "cpu", "cuda"),
            f"device must be auto, cpu or cuda, got {self.device!r}",
        )
        need(self.max_time_s is None or self.max_time_s > 0, "max_time_s must be positive")
        need(self.bn_recalibration >= 0, "bn_recalibration must be >= 0")

    @property
    def pretrained(self) -> bool:
        return self.weights == "imagenet" or self.weights_file is not None


@dataclass(frozen=True)
class SplitIndices:
    """Train / validation / test sets as (tile index, augmentation index) pairs."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    summary: dict = field(default_factory=dict)


def split_tiles(
    subjects,
    *,
    split: Split = "subject",
    test_fraction: float = 1 / 3,
    val_fraction: float = 0.2,
    augment: int = 9,
    seed: int = 0,
) -> SplitIndices:
    """Split tiles into train / validation / test sets.

    Parameters
    ----------
    subjects : sequence
        Subject of each tile.
    split : {'subject', 'random-paper'}
        ``'subject'``: whole subjects go to test (``test_fraction`` of them), then
        to validation (``val_fraction`` of the rest); only training tiles are
        augmented (``augment`` copies); validation and test tiles are used as they
        are. ``'random-paper'``: all ``augment`` copies of all tiles are shuffled
        and split by count, as seed 002 did.

    Returns
    -------
    SplitIndices
        Arrays of shape (n, 2): tile index, augmentation index.

    Raises
    ------
    InputError
        Fewer than three subjects for the subject split, or sets that come out empty.
    """
    subjects = np.asarray(subjects).astype(str)
    n = subjects.size
    rng = np.random.default_rng(seed)
    if split == "subject":
        unique = np.unique(subjects)
        if unique.size < 3:
            raise InputError(
                f"the subject split needs at least 3 subjects (train, validation, test), "
                f"found {unique.size}; use split='random-paper'"
            )
        order = rng.permutation(unique)
        n_test = min(max(1, round(unique.size * test_fraction)), unique.size - 2)
        n_val = min(max(1, round((unique.size - n_test) * val_fraction)), unique.size - n_test - 1)
        test_s, val_s = set(order[:n_test]), set(order[n_test : n_test + n_val])
        tiles = np.arange(n)
        in_test = np.isin(subjects, list(test_s))
        in_val = np.isin(subjects, list(val_s))
        train_tiles = tiles[~in_test & ~in_val]
        train = np.stack(np.meshgrid(train_tiles, np.arange(augment), indexing="ij"), -1)
        train = train.reshape(-1, 2)
        val = np.stack([tiles[in_val], np.zeros(in_val.sum(), int)], -1)
        test = np.stack([tiles[in_test], np.zeros(in_test.sum(), int)], -1)
        summary = {
            "protocol": "subject",
            "subjects": {"train": int(unique.size - n_test - n_val), "val": n_val, "test": n_test},
            "test_subjects": sorted(test_s),
            "val_subjects": sorted(val_s),
        }
    elif split == "random-paper":
        pairs = np.stack(np.meshgrid(np.arange(n), np.arange(augment), indexing="ij"), -1)
        pairs = pairs.reshape(-1, 2)[rng.permutation(n * augment)]
        n_test = round(len(pairs) * test_fraction)
        rest = pairs[n_test:]
        n_val = max(1, round(len(rest) * val_fraction))
        test, val, train = pairs[:n_test], rest[:n_val], rest[n_val:]
        summary = {"protocol": "random-paper"}
    else:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise InputError(f"the {name} set is empty: too few tiles or subjects")
    shared = len(set(subjects[train[:, 0]]) & set(subjects[test[:, 0]]))
    summary.update(
        pairs={"train": len(train), "val": len(val), "test": len(test)},
        tiles={
            "train": int(np.unique(train[:, 0]).size),
            "val": int(np.unique(val[:, 0]).size),
            "test": int(np.unique(test[:, 0]).size),
        },
        test_tiles_also_in_train=int(np.isin(np.unique(test[:, 0]), train[:, 0]).sum()),
        test_subjects_also_in_train=shared,
    )
    return SplitIndices(train=train, val=val, test=test, summary=summary)


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


class EarlyStopping:
    """Keras-style early stopping on a loss: stop after ``patience`` epochs without
    improvement, remember the best epoch."""

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, loss: float, epoch: int) -> bool:
        """Record ``loss``; True when this epoch is the best so far."""
        if loss < self.best:
            self.best, self.best_epoch, self.bad_epochs = float(loss), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


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


def _resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


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
) -> TrainResult:
    """Train a grading model on a tile dataset and evaluate it on held-out tiles.

    Parameters
    ----------
    data_dir : str or Path
        Tile dataset (``tiles/``, ``tiles.csv``, ``labels.csv``).
    out_dir : str or Path
        Model directory to write: ``model.safetensors`` + ``model.json``, plus
        ``history.csv``, ``test_predictions.csv``, ``metrics.json``; while training,
        ``checkpoint.pt`` (removed at the end).
    config : TrainConfig
        Options (paper defaults).
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` (same data and options).
    provenance : dict, optional
        Stored in the manifest (e.g. that the data are phantom tiles).
    notice : str, optional
        One-line caveat stored in the manifest and shown by the CLI on use.
    progress : callable, optional
        ``progress(iterable, description=..., total=...)`` wrapping each epoch's
        batches (a progress bar).
    log : callable, optional
        Receives one line per event (default: the ``skinoct.matrix`` logger).

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Bad dataset or options; ``ModelError`` when pretrained weights cannot be had.
    """
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from skinoct.io import atomic_path, write_json, write_text
    from skinoct.matrix._dataset import read_tile_dataset
    from skinoct.matrix._evaluate import evaluate_predictions
    from skinoct.matrix._model import Preprocessing, normalize_batch, save_matrix_model
    from skinoct.matrix._network import MatrixNet, load_pretrained, set_phase

    config = config or TrainConfig()
    say = log or logger.info
    started = time.perf_counter()
    out_dir = Path(out_dir)
    device = _resolve_device(config.device)
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
    targets = grades - 1
    subjects = table["subject"] if "subject" in table.columns else table["tile_id"]
    splits = split_tiles(
        subjects.to_numpy(),
        split=config.split,
        test_fraction=config.test_fraction,
        val_fraction=config.val_fraction,
        augment=config.augment,
        seed=config.seed,
    )
    counts = {str(g): int((grades == g).sum()) for g in GRADES}
    say(
        f"{len(table)} tiles ({counts}), {subjects.nunique()} subjects; split {config.split}: "
        f"{splits.summary['pairs']} images (train/val/test)"
    )
    if data.kappa is not None:
        say(
            f"{len(data.raters)} raters, Fleiss' kappa {data.kappa:.3f}; training grade = "
            f"majority vote (ties: {config.tie})"
        )

    torch.manual_seed(config.seed)
    net = MatrixNet(head=config.head, num_classes=len(GRADES))
    pretrained = None
    if config.pretrained:
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
        say(line)
        phases = [("head", config.lr), ("fine_tune", config.fine_tune_lr)]
    else:
        say("no pretrained weights: " + PAPER_DEVIATIONS_SCRATCH)
        phases = [("all", config.lr)]
    net.to(device)
    # channels-last is faster on CUDA and also on the CPU (100 vs 69 images/s per
    # training step on the 2-core build machine: bench_matrix.py --train-steps).
    net.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    tiles = torch.from_numpy(data.tiles).to(device)
    y_all = torch.from_numpy(targets).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )

    def batch_input(pairs: np.ndarray):
        index = torch.as_tensor(pairs[:, 0], device=device)
        x = tiles[index].float()
        if (pairs[:, 1] != 0).any():
            x = augment_tiles(x, pairs[:, 1])
        x = normalize_batch(x, config.normalization)
        x = x.contiguous(memory_format=torch.channels_last)
        return x, y_all[index]

    def predict(pairs: np.ndarray, batch: int = 256) -> np.ndarray:
        net.eval()
        out = []
        with torch.inference_mode(), autocast:
            for start in range(0, len(pairs), batch):
                x, _ = batch_input(pairs[start : start + batch])
                out.append(net(x).float().cpu())
        return torch.cat(out).numpy()

    def recalibrate_bn() -> None:
        if config.bn_recalibration == 0:
            return
        pick = torch.randperm(len(splits.train), generator=generator)[: config.bn_recalibration]
        pairs = splits.train[pick.numpy()]
        batches = (batch_input(pairs[i : i + 64])[0] for i in range(0, len(pairs), 64))
        with autocast:
            recalibrate_batch_norm(net, batches)

    def validate() -> tuple[float, float]:
        logits = torch.from_numpy(predict(splits.val))
        y = torch.from_numpy(targets[splits.val[:, 0]])
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())

    checkpoint = out_dir / "checkpoint.pt"
    history: list[dict] = []
    state = {"phase": 0, "epoch": 0}
    resumed = None
    if resume and checkpoint.is_file():
        resumed = torch.load(checkpoint, map_location="cpu", weights_only=True)
        saved = json.loads(resumed["config"])
        mine = {k: v for k, v in asdict(config).items() if k not in ("device", "max_time_s")}
        if {k: saved.get(k) for k in mine} != json.loads(json.dumps(mine)):
            raise InputError(
                "checkpoint was written with other options; train without --resume", path=checkpoint
            )
        net.load_state_dict(resumed["model"])
        history = json.loads(resumed["history"])
        state = {"phase": int(resumed["phase"]), "epoch": int(resumed["epoch"])}
        say(f"resuming phase {state['phase'] + 1} at epoch {state['epoch'] + 1}")
    elif resume:
        say("no checkpoint to resume from; starting afresh")

    images_seen = sum(int(h.get("images", 0)) for h in history)
    phase_reports, stopped_by_time = [], False
    for phase_index, (phase, lr) in enumerate(phases):
        if phase_index < state["phase"]:
            continue
        report = set_phase(net, phase, fine_tune_at=config.fine_tune_at)
        phase_reports.append({k: report[k] for k in report if not k.endswith("_tensors")})
        say(
            f"phase {phase_index + 1}/{len(phases)} '{phase}': {report['keras_layers_frozen']} of "
            f"{report['keras_layers_total']} Keras base layers frozen, "
            f"{report['trainable_params']:,} trainable parameters, Adam lr {lr:g}"
        )
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
        steps_per_epoch = math.ceil(len(splits.train) / config.batch_size)
        if config.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=config.epochs * steps_per_epoch
            )
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
            )
        stopper = EarlyStopping(config.early_stop_patience)
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        first_epoch = 0
        if resumed is not None and phase_index == state["phase"]:
            optimizer.load_state_dict(resumed["optimizer"])
            scheduler.load_state_dict(json.loads(resumed["scheduler"]))
            stopper.load_state_dict(json.loads(resumed["stopper"]))
            best_state = resumed["best_model"]
            first_epoch = state["epoch"]
        for epoch in range(first_epoch, config.epochs):
            if stopper.should_stop:
                break
            t0 = time.perf_counter()
            net.train()
            order = splits.train[torch.randperm(len(splits.train), generator=generator).numpy()]
            starts = range(0, len(order), config.batch_size)
            if progress is not None:
                starts = progress(
                    starts, description=f"{phase} epoch {epoch + 1}", total=len(starts)
                )
            total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
            for start in starts:
                x, y = batch_input(order[start : start + config.batch_size])
                with autocast:
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if config.lr_schedule == "cosine":
                    scheduler.step()
                total_loss += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
            recalibrate_bn()
            val_loss, val_acc = validate()
            if config.lr_schedule == "plateau":
                scheduler.step(val_loss)
            improved = stopper.step(val_loss, epoch)
            if improved:
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            images_seen += len(order)
            row = {
                "phase": phase,
                "epoch": epoch + 1,
                "train_loss": float(total_loss) / len(order),
                "train_accuracy": float(correct) / len(order),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
                "images": len(order),
                "best": improved,
            }
            history.append(row)
            say(
                f"{phase} epoch {epoch + 1}: loss {row['train_loss']:.4f} "
                f"acc {row['train_accuracy']:.3f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.3f} | lr {row['lr']:.2g}"
                f" | {row['seconds']:.1f} s" + (" *" if improved else "")
            )
            with atomic_path(checkpoint) as tmp:
                torch.save(
                    {
                        "phase": phase_index,
                        "epoch": epoch + 1,
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": json.dumps(scheduler.state_dict()),
                        "stopper": json.dumps(stopper.state_dict()),
                        "best_model": best_state,
                        "history": json.dumps(history),
                        "config": json.dumps(asdict(config)),
                    },
                    tmp,
                )
            if config.max_time_s and time.perf_counter() - started > config.max_time_s:
                stopped_by_time = True
                break
        net.load_state_dict(best_state)
        stop_note = ", early stop" if stopper.should_stop else ""
        say(
            f"phase '{phase}' done: best val loss {stopper.best:.4f} "
            f"at epoch {stopper.best_epoch + 1}{stop_note}"
        )
        if stopped_by_time:
            say(
                f"time limit of {config.max_time_s:g} s reached: "
                "stopping with the best weights so far"
            )
            break
        resumed = None

    # Held-out evaluation: touched once, after training.
    logits = predict(splits.test)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    pred = probs.argmax(1) + 1
    true = grades[splits.test[:, 0]]
    metrics = evaluate_predictions(true, pred)
    predictions = pd.DataFrame(
        {
            "tile_id": table["tile_id"].to_numpy()[splits.test[:, 0]],
            "subject": subjects.to_numpy()[splits.test[:, 0]],
            "augmentation": [AUGMENTATIONS[k] for k in splits.test[:, 1]],
            "true": true,
            "pred": pred,
        }
    )
    for j, g in enumerate(GRADES):
        predictions[f"p_{g}"] = probs[:, j]
    predictions["expected_grade"] = probs @ np.asarray(GRADES, dtype=float)
    seconds = time.perf_counter() - started
    say(
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
    if stopped_by_time:
        deviations.append(f"stopped by the time limit ({config.max_time_s:g} s)")
    training = {
        "config": asdict(config),
        "data": {
            "path": str(Path(data_dir)),
            "tiles": len(table),
            "grades": counts,
            "subjects": int(subjects.nunique()),
            "raters": list(data.raters),
            "fleiss_kappa": data.kappa,
        },
        "split": splits.summary,
        "phases": phase_reports,
        "pretrained": pretrained and {k: pretrained[k] for k in ("source", "loaded")},
        "epochs_run": len(history),
        "images_seen": images_seen,
        "stopped_by_time": stopped_by_time,
        "device": _device_name(device),
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "deviations_from_paper": deviations,
        "augmentations": list(AUGMENTATIONS[: config.augment]),
    }
    preprocessing = Preprocessing(input_size=config.input_size, normalization=config.normalization)
    net.cpu().eval()
    save_matrix_model(
        out_dir,
        net,
        preprocessing=preprocessing,
        training=training,
        scores={"test": metrics.to_dict()},
        provenance=provenance or {},
        notice=notice,
    )
    history_table = pd.DataFrame(history)
    write_text(out_dir / "history.csv", history_table.to_csv(index=False, float_format="%.6g"))
    predictions_csv = predictions.to_csv(index=False, float_format="%.5g")
    write_text(out_dir / "test_predictions.csv", predictions_csv)
    write_json(out_dir / "metrics.json", {"split": splits.summary, **metrics.to_dict()})
    checkpoint.unlink(missing_ok=True)
    return TrainResult(
        model_dir=out_dir,
        metrics=metrics,
        history=history_table,
        predictions=predictions,
        split=splits.summary,
        seconds=seconds,
        images_seen=images_seen,
    )


def with_overrides(config: TrainConfig, **changes) -> TrainConfig:
    """A copy of ``config`` with the non-None ``changes`` applied."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
