"""The :class:`Image` record: pixel data plus physical spacing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from skinoct.errors import InputError

__all__ = ["AXES", "DEFAULT_SPACING_UM", "Image", "SpacingSource", "check_spacing"]

#: Axis strings skinoct understands. ``z`` is depth (downwards), ``x`` lateral,
#: ``y`` the second lateral axis of a volume.
AXES = ("zx", "yx", "zyx")

#: LC-OCT resolution is about 1 µm isotropic (Dubois et al. 2018; seed 002 §2.1).
DEFAULT_SPACING_UM = 1.0

SpacingSource = Literal["metadata", "override", "default"]


def check_spacing(spacing_um, ndim: int, *, path: str | Path | None = None) -> tuple[float, ...]:
    """Validate a spacing and return it as a tuple of floats, one per axis.

    Raises
    ------
    InputError
        If the number of values does not match ``ndim`` or a value is not a finite
        positive number.
    """
    try:
        values = tuple(float(v) for v in np.atleast_1d(np.asarray(spacing_um, dtype=float)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"spacing must be numbers, got {spacing_um!r}", path=path) from exc
    if len(values) == 1 and ndim > 1:
        values = values * ndim
    if len(values) != ndim:
        raise InputError(
            f"spacing needs {ndim} values (one per axis), got {len(values)}: {values}", path=path
        )
    for v in values:
        if not np.isfinite(v) or v <= 0:
            raise InputError(f"spacing must be positive and finite, got {values} µm", path=path)
    return values


@dataclass(frozen=True)
class Image:
    """An image or volume with its physical pixel spacing.

    Parameters
    ----------
    data : ndarray
        Pixel values, axes as given by ``axes``.
    spacing_um : tuple of float
        Pixel size in micrometres along each axis of ``data``.
    axes : {'zx', 'yx', 'zyx'}
        ``'zx'``: vertical section (depth × lateral); ``'yx'``: en-face image;
        ``'zyx'``: volume (depth × y × x).
    path : Path, optional
        The file it was read from.
    spacing_source : {'metadata', 'override', 'default'}
        Where ``spacing_um`` came from.
    """

    data: np.ndarray = field(repr=False)
    spacing_um: tuple[float, ...]
    axes: str
    path: Path | None = None
    spacing_source: SpacingSource = "metadata"

    def __post_init__(self) -> None:
        if self.axes not in AXES:
            raise InputError(f"axes must be one of {AXES}, got {self.axes!r}", path=self.path)
        if self.data.ndim != len(self.axes):
            raise InputError(
                f"axes {self.axes!r} need a {len(self.axes)}-D array, got {self.data.ndim}-D "
                f"with shape {self.data.shape}",
                path=self.path,
            )
        object.__setattr__(
            self, "spacing_um", check_spacing(self.spacing_um, self.data.ndim, path=self.path)
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def extent_um(self) -> tuple[float, ...]:
        """Physical size along each axis (number of pixels × spacing)."""
        return tuple(n * s for n, s in zip(self.data.shape, self.spacing_um, strict=True))

    def with_data(self, data: np.ndarray, **changes) -> Image:
        """Return a copy holding ``data`` (same spacing and axes unless changed)."""
        return replace(self, data=data, **changes)
