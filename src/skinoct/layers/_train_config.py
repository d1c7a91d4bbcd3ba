"""Options of :func:`skinoct.layers.train_layers`, validated on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from skinoct.layers._model import DEFAULT_MODEL_SPACING_UM
from skinoct.layers._network import NetworkSpec
from skinoct.models import check_config, check_positive

__all__ = ["TrainConfig"]


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
    time_budget_s : float, optional
        Wall-clock budget of the whole :func:`train_layers` call. An epoch is not
        started when it would end past the budget; the fit then keeps its best
        validation weights and its checkpoint, and a later call with the same data
        and options resumes it. Not part of the run's fingerprint.
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
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        folds_ok = isinstance(self.folds, int) and (self.folds == 0 or self.folds >= 2)
        check_config(
            folds_ok, f"folds must be 0 (no cross-validation) or >= 2, got {self.folds!r}"
        )
        for name in ("epochs", "patience", "batch_size", "patches_per_section"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, zero=True)
        patch = tuple(int(p) for p in self.patch)
        check_config(
            len(patch) == 2 and min(patch) >= 1,
            f"patch must be two positive sizes (z, x), got {self.patch!r}",
        )
        d = self.network.divisor
        check_config(
            not any(p % d for p in patch),
            f"patch sizes must be multiples of {d} (the network's strides), got {patch}",
        )
        spacing = tuple(float(s) for s in self.model_spacing_um)
        check_config(
            len(spacing) == 2 and all(math.isfinite(s) and s > 0 for s in spacing),
            f"model_spacing_um must be two positive values, got {spacing}",
        )
        if self.num_workers is not None:
            check_positive("num_workers", self.num_workers, integer=True, zero=True)
        if self.time_budget_s is not None:
            check_positive("time_budget_s", self.time_budget_s)
        object.__setattr__(self, "patch", patch)
        object.__setattr__(self, "model_spacing_um", spacing)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["network"] = self.network.to_dict()
        out["patch"] = list(self.patch)
        out["model_spacing_um"] = list(self.model_spacing_um)
        return out
