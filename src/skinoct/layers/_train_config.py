"""Options of :func:`skinoct.layers.train_layers`, validated on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from skinoct.layers._model import DEFAULT_MODEL_SPACING_UM
from skinoct.layers._network import MAX_LEVELS, NetworkSpec
from skinoct.layers._recipe import Recipe
from skinoct.layers._sampling import SAMPLING_MODES
from skinoct.models import check_config, check_positive

__all__ = ["TrainConfig"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of :func:`train_layers`.

    Attributes
    ----------
    folds : int or None
        Cross-validation folds grouped by subject: 0 = no CV (train the final model
        for ``epochs`` epochs without validation), 1 = one subject-grouped hold-out
        split (80/20) whose best-validation network is the delivered model, k >= 2 =
        k-fold CV then a final model on all sections. None: chosen by the recipe
        (:mod:`skinoct.layers._recipe`).
    epochs : int
        Maximum epochs per fold (early stopping usually ends sooner).
    patience : int
        Epochs without a lower validation loss before a fold stops.
    batch_size : int or None
        Patches per optimisation step (None: recipe).
    patch : (int, int) or None
        Patch size ``(z, x)`` in pixels on the model grid; multiples of the network's
        divisor (16 by default). None: recipe (tissue band + context, full-width strips).
    patches_per_section : int or None
        Patches drawn per training section per epoch (None: recipe).
    sampling : {'band', 'uniform'}
        Where patches are cut: centred on the annotated tissue band, or uniformly.
    layer_intensity : float
        Probability that a training patch gets a random gain and offset per layer
        (:func:`skinoct.layers._augment.RandLayerIntensityd`; 0 = never, the default).
    resolution : float
        Probability of a wide anisotropic blur and, separately, of simulated coarse
        pixels (1–5× in z, 1–2.5× in x; :func:`skinoct.layers._augment.RandLowResolutiond`)
        per training patch; 0 = never, the default.
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
    network : NetworkSpec or None
        UNet arguments. None: the initial model's architecture with ``init``, else
        the recipe's width with the default depth. Given with ``init``, the network
        is warm-started from the tensors of the initial model that fit it by name
        and shape (e.g. its upper levels when ``network`` is deeper); the others
        start fresh and are named in a warning.
    levels : int or None
        Resolution levels of the U-Net (2-8), i.e. its context: each level doubles
        the rows it sees. None: the initial model's depth with ``init``, else the
        recipe's. Applied to the initial model's or the recipe's widths
        (:meth:`NetworkSpec.with_levels`); not combined with ``network``.
    model_spacing_um : (float, float)
        Grid ``(dz, dx)`` the network runs on (ignored with ``init``).
    time_budget_s : float, optional
        Wall-clock budget of the whole :func:`train_layers` call. An epoch is not
        started when it would end past the budget; the fit then keeps its best
        validation weights and its checkpoint, and a later call with the same data
        and options resumes it. Not part of the run's fingerprint.
    """

    folds: int | None = None
    epochs: int = 60
    patience: int = 8
    batch_size: int | None = None
    patch: tuple[int, int] | None = None
    patches_per_section: int | None = None
    sampling: str = "band"
    layer_intensity: float = 0.0
    resolution: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None
    network: NetworkSpec | None = None
    levels: int | None = None
    model_spacing_um: tuple[float, float] = DEFAULT_MODEL_SPACING_UM
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        folds_ok = self.folds is None or (
            isinstance(self.folds, int) and not isinstance(self.folds, bool) and self.folds >= 0
        )
        check_config(
            folds_ok,
            f"folds must be 0 (no CV), 1 (hold-out split) or >= 2, got {self.folds!r}",
        )
        for name in ("epochs", "patience", "batch_size", "patches_per_section"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name), integer=True)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, zero=True)
        check_config(
            self.sampling in SAMPLING_MODES,
            f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}",
        )
        check_config(
            0.0 <= float(self.layer_intensity) <= 1.0,
            f"layer_intensity must be a probability in [0, 1], got {self.layer_intensity!r}",
        )
        check_config(
            0.0 <= float(self.resolution) <= 1.0,
            f"resolution must be a probability in [0, 1], got {self.resolution!r}",
        )
        if self.levels is not None:
            check_config(
                isinstance(self.levels, int)
                and not isinstance(self.levels, bool)
                and 2 <= self.levels <= MAX_LEVELS,
                f"levels must be an integer in 2-{MAX_LEVELS}, got {self.levels!r}",
            )
            if self.network is not None:
                n = len(self.network.channels)
                check_config(
                    n == self.levels,
                    f"levels ({self.levels}) and network ({n} levels) disagree: set one",
                )
        patch = None
        if self.patch is not None:
            patch = tuple(int(p) for p in self.patch)
            check_config(
                len(patch) == 2 and min(patch) >= 1,
                f"patch must be two positive sizes (z, x), got {self.patch!r}",
            )
            d = self.resolved_network(NetworkSpec()).divisor
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

    #: Fields the recipe fills when they are None.
    RECIPE_FIELDS = ("folds", "batch_size", "patch", "patches_per_section", "network")

    def overridden(self) -> list[str]:
        """The recipe's fields that this config sets explicitly."""
        out = [name for name in self.RECIPE_FIELDS if getattr(self, name) is not None]
        return out + (["levels"] if self.levels is not None and self.network is None else [])

    def resolved_network(self, default: NetworkSpec) -> NetworkSpec:
        """``network``, else ``default``, at ``levels`` when those are set."""
        network = self.network or default
        return network if self.levels is None else network.with_levels(self.levels)

    def with_recipe(self, recipe: Recipe) -> TrainConfig:
        """This config with every ``None`` recipe field filled from ``recipe``."""
        # the recipe's spec only when it is used: its widths may not fit the default strides
        network = self.resolved_network(self.network or NetworkSpec(channels=recipe.channels))
        return replace(
            self,
            folds=recipe.folds if self.folds is None else self.folds,
            batch_size=self.batch_size or recipe.batch_size,
            patch=self.patch or recipe.patch,
            patches_per_section=self.patches_per_section or recipe.patches_per_section,
            network=network,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["network"] = None if self.network is None else self.network.to_dict()
        out["patch"] = None if self.patch is None else list(self.patch)
        out["model_spacing_um"] = list(self.model_spacing_um)
        return out
