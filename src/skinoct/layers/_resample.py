"""Resampling sections between their own pixel spacing and the model's grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["grid_shape", "pad_to_multiple", "resample_images", "resample_labels"]


def grid_shape(
    shape: Sequence[int], spacing_um: Sequence[float], target_um: Sequence[float]
) -> tuple[int, ...]:
    """Shape of an image of ``shape`` pixels at ``spacing_um`` resampled to ``target_um``.

    The physical extent is kept: ``round(n * spacing / target)`` pixels per axis, at
    least one.

    Examples
    --------
    >>> grid_shape((512, 1200), (1.0, 1.0), (1.0, 2.0))
    (512, 600)
    """
    return tuple(
        max(1, round(n * s / t)) for n, s, t in zip(shape, spacing_um, target_um, strict=True)
    )


def resample_images(batch, shape: Sequence[int]):
    """Bilinear resampling of a ``(n, c, z, x)`` float tensor to ``shape`` (z, x).

    Antialiased when shrinking so speckle does not alias into the coarser grid;
    the identity when the shape already matches.
    """
    import torch.nn.functional as F

    shape = tuple(int(s) for s in shape)
    if tuple(batch.shape[-2:]) == shape:
        return batch
    shrink = shape[0] < batch.shape[-2] or shape[1] < batch.shape[-1]
    return F.interpolate(batch, size=shape, mode="bilinear", align_corners=False, antialias=shrink)


def resample_labels(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D label mask to ``shape`` (pixel centres)."""
    labels = np.asarray(labels)
    shape = tuple(int(s) for s in shape)
    if labels.shape == shape:
        return labels
    rows = np.minimum(
        ((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.int64),
        labels.shape[0] - 1,
    )
    cols = np.minimum(
        ((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.int64),
        labels.shape[1] - 1,
    )
    return labels[np.ix_(rows, cols)]


def pad_to_multiple(batch, multiple: int, *, minimum: Sequence[int] = (0, 0)):
    """Pad a ``(n, c, z, x)`` tensor at the bottom and right to a multiple of ``multiple``.

    Reflection padding (replicate where the image is too small to reflect), so the
    padded border looks like more tissue or air rather than a black band the network
    would take for air below the dermis. Returns the padded tensor; crop with
    ``[..., :z, :x]``.
    """
    import torch.nn.functional as F

    z, x = batch.shape[-2:]
    tz = max(-(-z // multiple) * multiple, int(minimum[0]))
    tx = max(-(-x // multiple) * multiple, int(minimum[1]))
    pz, px = tz - z, tx - x
    if pz == 0 and px == 0:
        return batch
    mode = "reflect" if pz < z and px < x else "replicate"
    return F.pad(batch, (0, px, 0, pz), mode=mode)
