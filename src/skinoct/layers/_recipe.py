"""Training recipe chosen from a dataset fingerprint (in the spirit of nnU-Net).

nnU-Net (Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
biomedical image segmentation", Nature Methods 2021) derives patch size, batch size
and network depth from a *dataset fingerprint* with fixed rules instead of asking the
user. skinoct does the same for vertical skin sections, with rules written for the
case its users have: 50–500 annotated sections, a 2-core laptop CPU, minutes of
training. Every choice and the reason for it are written to the model manifest
(``training.recipe``), and every choice can be overridden (an explicit value in
:class:`~skinoct.layers.TrainConfig` wins and is recorded as such).

The rules (``model grid`` = the section resampled to the model spacing):

* **patch height** covers the tissue band (surface to DEJ, 90th percentile over
  columns and sections) plus 64 rows of context above and below (together about two
  thirds of the 5-level U-Net's 187-row receptive field), rounded up to the network's
  divisor and kept within 128–384 rows and within the median section height;
* **patch width**: full-width strips where sections are narrow (median width up to
  512 columns), else 512 columns, rounded to the divisor (wide patches see the
  lateral continuity of the layers, which is what the ordered decoding relies on);
* **batch size** fills a fixed pixel budget per step (8 × 256² on the CPU, twice that
  on a GPU), 2–32 patches;
* **patches per section** give about 50 optimisation steps per epoch (1–8);
* **sampling** ``band`` (patches centred on the tissue band, :mod:`._sampling`);
* **network**: the bundled width (8–128 channels) on the CPU, 16–256 on a GPU, or
  the initial model's architecture when fine-tuning;
* **folds**: 5-fold CV grouped by subject + a final model on all data without a time
  budget (as before); with a time budget a single subject-grouped hold-out split
  (``folds=1``: 80 % train / 20 % validation), whose best-validation network is the
  delivered model, so the whole budget trains the model the user gets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from skinoct.layers._sampling import tissue_band

__all__ = ["DatasetFingerprint", "Recipe", "dataset_fingerprint", "plan_recipe"]

#: Pixels per optimisation step on the CPU (batch × patch area); doubled on a GPU.
CPU_PIXELS_PER_STEP = 8 * 256 * 256
#: Rows of context kept above the surface and below the DEJ inside a patch.
CONTEXT_ROWS = 64
#: Optimisation steps per epoch the patches-per-section rule aims at.
STEPS_PER_EPOCH = 50
CPU_CHANNELS = (8, 16, 32, 64, 128)
GPU_CHANNELS = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class DatasetFingerprint:
    """What the recipe rules look at, measured on the model grid.

    Attributes
    ----------
    n_sections, n_subjects : int
        Dataset size.
    median_shape : (int, int)
        Median section size (rows, columns) on the model grid.
    band_rows_p90 : float
        90th percentile of the tissue-band height (surface to DEJ) over all columns of
        all sections, in rows of the model grid.
    label_values : tuple of int
        Annotated label set.
    model_spacing_um : (float, float)
        The grid the numbers above are measured on.
    """

    n_sections: int
    n_subjects: int
    median_shape: tuple[int, int]
    band_rows_p90: float
    label_values: tuple[int, ...]
    model_spacing_um: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["median_shape"] = list(self.median_shape)
        out["label_values"] = list(self.label_values)
        out["model_spacing_um"] = list(self.model_spacing_um)
        return out


@dataclass(frozen=True)
class Recipe:
    """Training choices with the reason for each (see the module docstring)."""

    patch: tuple[int, int]
    batch_size: int
    patches_per_section: int
    sampling: str
    channels: tuple[int, ...]
    folds: int
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["patch"] = list(self.patch)
        out["channels"] = list(self.channels)
        return out


def dataset_fingerprint(
    targets: Sequence[np.ndarray],
    *,
    subjects: Sequence[str],
    label_values: Sequence[int],
    model_spacing_um: Sequence[float],
) -> DatasetFingerprint:
    """Measure a prepared dataset.

    Parameters
    ----------
    targets : sequence of ndarray (z, x)
        Class-index masks on the model grid (``PreparedSection.target``).
    subjects : sequence of str
        Subject of each section.
    label_values : sequence of int
        The label set; class index ``i`` is ``label_values[i]``.
    model_spacing_um : (float, float)
        The model grid.
    """
    if len(targets) == 0:
        raise ValueError("a fingerprint needs at least one section")
    values = tuple(int(v) for v in label_values)
    air = values.index(0) if 0 in values else None
    dermis = values.index(3) if 3 in values else None
    heights, shapes = [], []
    for t in targets:
        shapes.append(t.shape)
        band = tissue_band(t, air_index=air, dermis_index=dermis)
        if band.valid.any():
            heights.append(band.height())
    band_p90 = float(np.percentile(np.concatenate(heights), 90)) if heights else 0.0
    shapes_arr = np.asarray(shapes)
    return DatasetFingerprint(
        n_sections=len(targets),
        n_subjects=len(set(subjects)),
        median_shape=(int(np.median(shapes_arr[:, 0])), int(np.median(shapes_arr[:, 1]))),
        band_rows_p90=round(band_p90, 1),
        label_values=values,
        model_spacing_um=tuple(float(s) for s in model_spacing_um),
    )


def _round_up(value: float, divisor: int) -> int:
    return int(math.ceil(value / divisor) * divisor)


def plan_recipe(
    fingerprint: DatasetFingerprint,
    *,
    divisor: int = 16,
    gpu: bool = False,
    time_budget_s: float | None = None,
    init_channels: Sequence[int] | None = None,
) -> Recipe:
    """Apply the recipe rules (module docstring) to a fingerprint.

    Parameters
    ----------
    fingerprint : DatasetFingerprint
    divisor : int
        Patch sizes must be multiples of this (the network's total stride).
    gpu : bool
        Training on a GPU (larger batches, wider network).
    time_budget_s : float, optional
        Wall-clock budget of the whole run; selects the hold-out split.
    init_channels : sequence of int, optional
        Channels of the model fine-tuned from (its architecture is kept).

    Returns
    -------
    Recipe

    Examples
    --------
    >>> fp = DatasetFingerprint(100, 20, (512, 600), 90.0, (0, 1, 2, 3), (1.0, 2.0))
    >>> plan_recipe(fp).patch
    (224, 512)
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    fp = fingerprint
    reasons: dict[str, str] = {}

    rows = float(np.clip(fp.band_rows_p90 + 2 * CONTEXT_ROWS, 128, 384))
    patch_z = min(_round_up(rows, divisor), _round_up(fp.median_shape[0], divisor))
    reasons["patch"] = (
        f"height: tissue band p90 {fp.band_rows_p90:g} rows + 2 x {CONTEXT_ROWS} rows of "
        "context (128-384, at most the median section height); "
    )
    width = int(fp.median_shape[1])
    if width <= 512:
        patch_x = _round_up(max(width, 64), divisor)
        reasons["patch"] += f"width: full-width strips (median width {width} columns)"
    else:
        patch_x = _round_up(512, divisor)
        reasons["patch"] += f"width: 512 columns (median width {width} > 512)"

    pixels = CPU_PIXELS_PER_STEP * (2 if gpu else 1)
    batch = int(np.clip(pixels // (patch_z * patch_x), 2, 32))
    reasons["batch_size"] = (
        f"{pixels} pixels per step on the {'GPU' if gpu else 'CPU'} / patch of "
        f"{patch_z}x{patch_x} (2-32)"
    )
    pps = int(np.clip(round(STEPS_PER_EPOCH * batch / fp.n_sections), 1, 8))
    reasons["patches_per_section"] = (
        f"about {STEPS_PER_EPOCH} steps per epoch for {fp.n_sections} sections (1-8)"
    )
    reasons["sampling"] = "patches centred on the annotated tissue band"

    if init_channels is not None:
        channels = tuple(int(c) for c in init_channels)
        reasons["channels"] = "the initial model's architecture (fine-tuning)"
    else:
        channels = GPU_CHANNELS if gpu else CPU_CHANNELS
        reasons["channels"] = f"{'GPU' if gpu else 'CPU'} default width"

    if time_budget_s is not None and fp.n_subjects >= 2:
        folds = 1
        reasons["folds"] = (
            "time budget: one subject-grouped hold-out split (20 % validation); its "
            "best-validation network is the delivered model"
        )
    elif fp.n_subjects >= 5:
        folds = 5
        reasons["folds"] = "5-fold CV grouped by subject, then a final model on all sections"
    else:
        folds = 0
        reasons["folds"] = f"only {fp.n_subjects} subject(s): no cross-validation"
    return Recipe(
        patch=(patch_z, patch_x),
        batch_size=batch,
        patches_per_section=pps,
        sampling="band",
        channels=channels,
        folds=folds,
        reasons=reasons,
    )
