"""Where training patches are cut: on the skin, not uniformly over air and deep dermis.

A vertical LC-OCT section is mostly air above the skin and homogeneous dermis below
the dermo-epidermal junction (DEJ); the boundaries the network must learn (surface,
SC/epidermis junction, DEJ) occupy a band a few tens of µm high. Patches drawn
uniformly spend most of the training on pixels that teach nothing about those
boundaries. Here every patch is centred, in depth, on a random point of the
annotated tissue band of a random column (from a little above the skin surface to a
little below the DEJ), so that each patch contains the boundaries with context on
both sides. This is the foreground oversampling of nnU-Net (Isensee et al., Nature
Methods 2021) specialised to layered tissue.

``mode="uniform"`` keeps the previous behaviour (uniform crops), used as the
comparison in ``docs/layers.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["SAMPLING_MODES", "BandSampler", "TissueBand", "band_crop", "tissue_band"]

SamplingMode = Literal["band", "uniform"]
#: Patch placements accepted by :func:`band_crop` and ``TrainConfig.sampling``.
SAMPLING_MODES: tuple[str, ...] = ("band", "uniform")


@dataclass(frozen=True)
class TissueBand:
    """Per-column depth range (rows, on the model grid) holding the layer boundaries.

    Attributes
    ----------
    top : ndarray of int
        First tissue row per column (the skin surface); -1 for a column without tissue.
    bottom : ndarray of int
        First dermis row per column (the DEJ), or the last tissue row where no dermis
        is annotated; -1 for a column without tissue.
    """

    top: np.ndarray
    bottom: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Columns that hold tissue."""
        return self.top >= 0

    def height(self) -> np.ndarray:
        """Band height per valid column, in rows (surface to DEJ, at least 1)."""
        v = self.valid
        return np.maximum(self.bottom[v] - self.top[v], 0) + 1


def tissue_band(
    target: np.ndarray, *, air_index: int | None, dermis_index: int | None
) -> TissueBand:
    """Surface and DEJ rows per column of a class-index mask.

    Parameters
    ----------
    target : ndarray (z, x)
        Class indices (into the dataset's label set), depth along axis 0.
    air_index, dermis_index : int or None
        Class index of air and of dermis (None where the label set lacks them; without
        air the surface is row 0, without dermis the band ends at the last tissue row).

    Returns
    -------
    TissueBand
    """
    target = np.asarray(target)
    if target.ndim != 2:
        raise ValueError(f"target must be a 2-D (z, x) mask, got shape {target.shape}")
    n_z = target.shape[0]
    tissue = target != air_index if air_index is not None else np.ones(target.shape, bool)
    has = tissue.any(axis=0)
    top = np.where(has, tissue.argmax(axis=0), -1)
    last = n_z - 1 - tissue[::-1].argmax(axis=0)
    if dermis_index is not None:
        dermis = target == dermis_index
        has_d = dermis.any(axis=0)
        bottom = np.where(has_d, dermis.argmax(axis=0), last)
    else:
        bottom = last
    bottom = np.where(has, np.maximum(bottom, top), -1)
    return TissueBand(top=top.astype(np.int64), bottom=bottom.astype(np.int64))


def band_crop(
    image: np.ndarray,
    target: np.ndarray,
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    band: TissueBand | None,
    mode: SamplingMode = "band",
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one ``shape`` region out of a section, centred on the tissue band.

    Parameters
    ----------
    image, target : ndarray (z, x)
        The section and its class-index mask, at least ``shape`` large (pad first).
    shape : (int, int)
        Region size in rows and columns.
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller for reproducible epochs).
    band : TissueBand or None
        From :func:`tissue_band` on ``target`` (before padding; columns beyond the
        band's width are treated as tissue-free). None or a band without tissue falls
        back to a uniform crop.
    mode : {'band', 'uniform'}
        ``'band'``: the region's centre row is drawn uniformly between the surface and
        the DEJ of a random tissue column (± a quarter of the region height, so the
        boundaries are seen at every position in the patch); ``'uniform'``: anywhere.

    Returns
    -------
    (image, target) : ndarrays of ``shape``
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
    hz, hx = (int(s) for s in shape)
    n_z, n_x = image.shape
    if n_z < hz or n_x < hx:
        raise ValueError(f"section {image.shape} is smaller than the region {(hz, hx)}")
    columns = (
        np.flatnonzero(band.valid[:n_x]) if band is not None and mode == "band" else np.array([])
    )
    if columns.size == 0:
        z0 = int(rng.integers(0, n_z - hz + 1))
        x0 = int(rng.integers(0, n_x - hx + 1))
    else:
        col = int(rng.choice(columns))
        top, bottom = int(band.top[col]), int(band.bottom[col])
        jitter = hz // 4
        centre = int(rng.integers(top - jitter, bottom + jitter + 1))
        z0 = int(np.clip(centre - hz // 2, 0, n_z - hz))
        # The column is inside the region, at a random lateral position.
        x_low = max(0, col - hx + 1)
        x_high = min(col, n_x - hx)
        x0 = (
            int(rng.integers(x_low, x_high + 1))
            if x_high >= x_low
            else int(rng.integers(0, n_x - hx + 1))
        )
    return (
        image[z0 : z0 + hz, x0 : x0 + hx],
        target[z0 : z0 + hz, x0 : x0 + hx],
    )


@dataclass(frozen=True)
class BandSampler:
    """The training-patch sampler of :func:`~skinoct.layers.train_layers`.

    ``BandSampler(label_values, mode=...)(sections, patch=..., length=..., seed=...)``
    returns the epoch's :class:`~skinoct.layers._augment.TrainPatches`, placed by
    :func:`band_crop`. A frozen dataclass rather than a closure so it pickles into
    data-loader worker processes.
    """

    label_values: tuple[int, ...]
    mode: str = "band"
    layer_intensity: float = 0.0
    resolution: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {self.mode!r}")
        object.__setattr__(self, "label_values", tuple(int(v) for v in self.label_values))

    def __call__(self, sections, *, patch: Sequence[int], length: int, seed: int):
        from skinoct.layers._augment import TrainPatches

        values = self.label_values
        return TrainPatches(
            sections,
            patch=patch,
            length=length,
            seed=seed,
            sampling=self.mode,
            air_index=values.index(0) if 0 in values else None,
            dermis_index=values.index(3) if 3 in values else None,
            layer_intensity=self.layer_intensity,
            resolution=self.resolution,
        )
