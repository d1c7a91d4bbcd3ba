"""Options of :func:`skinoct.matrix.train_matrix`; the defaults are seed 002's values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from skinoct.models import check_config

__all__ = ["AUGMENTATIONS", "SPLITS", "TrainConfig"]

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

        check_config(
            self.weights in ("none", "imagenet"),
            f"weights must be 'none' or 'imagenet', got {self.weights!r}",
        )
        check_config(
            not (self.weights == "imagenet" and self.weights_file),
            "give weights='imagenet' or a weights file, not both",
        )
        check_config(self.head in HEADS, f"head must be one of {HEADS}, got {self.head!r}")
        check_config(
            self.normalization in NORMALIZATIONS,
            f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}",
        )
        check_config(
            32 <= self.input_size <= 1024, f"input_size must be 32–1024, got {self.input_size}"
        )
        check_config(self.split in SPLITS, f"split must be one of {SPLITS}, got {self.split!r}")
        check_config(
            0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}"
        )
        check_config(
            0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"
        )
        check_config(
            1 <= self.augment <= len(AUGMENTATIONS),
            f"augment must be 1–{len(AUGMENTATIONS)}, got {self.augment}",
        )
        check_config(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        check_config(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        check_config(self.lr > 0 and self.fine_tune_lr > 0, "learning rates must be positive")
        check_config(0 < self.lr_factor < 1, f"lr_factor must be in (0, 1), got {self.lr_factor}")
        check_config(
            self.lr_schedule in ("plateau", "cosine"),
            f"lr_schedule must be 'plateau' or 'cosine', got {self.lr_schedule!r}",
        )
        check_config(self.lr_patience >= 0, f"lr_patience must be >= 0, got {self.lr_patience}")
        check_config(
            self.early_stop_patience >= 1,
            f"early_stop_patience must be >= 1, got {self.early_stop_patience}",
        )
        check_config(
            self.device in ("auto", "cpu", "cuda"),
            f"device must be auto, cpu or cuda, got {self.device!r}",
        )
        check_config(self.max_time_s is None or self.max_time_s > 0, "max_time_s must be positive")
        check_config(self.bn_recalibration >= 0, "bn_recalibration must be >= 0")

    @property
    def pretrained(self) -> bool:
        return self.weights == "imagenet" or self.weights_file is not None
