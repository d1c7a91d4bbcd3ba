"""Segmentation uncertainty along the DEJ (softmax entropy of the layer model).

Seed 000 (Dauce, Damae Medical) proposes the entropy of the segmentation model as
"an indicator of atypical morphological features, such as disruptions in the DEJ".
Here the entropy map is sampled in a band around the DEJ, column by column (or at
each (y, x) of a volume); stretches where it stays above a threshold over a minimum
length are reported as uncertain DEJ segments (areas in 3-D).

The entropy is expected normalised to [0, 1] (Shannon entropy of the class
probabilities divided by ln 4 for the four skinoct classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from skinoct.errors import InputError
from skinoct.morphometry._undulation import _runs

__all__ = ["check_entropy", "dej_entropy", "uncertain_area", "uncertain_segments"]


def check_entropy(entropy, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a normalised entropy map of the mask's shape (float32 unless float64)."""
    ent = np.asarray(entropy)
    if ent.shape != tuple(shape):
        raise InputError(f"entropy map has shape {ent.shape}, the mask {tuple(shape)}")
    if ent.dtype not in (np.float32, np.float64):
        ent = ent.astype(np.float32)
    if not np.isfinite(ent).all():
        raise InputError("entropy map holds NaN or infinite values")
    low, high = float(ent.min()), float(ent.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise InputError(
            f"entropy map ranges {low:.3g}–{high:.3g}; expected entropy "
            "normalised to [0, 1] (divide entropy in nats by ln 4)"
        )
    return ent


def _interpolate_gaps_1d(depth: np.ndarray) -> np.ndarray:
    """Fill interior NaN gaps linearly (a disrupted DEJ is still sampled); ends stay NaN."""
    valid = np.isfinite(depth)
    if valid.sum() < 2:
        return depth.copy()
    idx = np.arange(depth.size)
    first, last = np.flatnonzero(valid)[[0, -1]]
    out = depth.copy()
    inner = (idx > first) & (idx < last) & ~valid
    out[inner] = np.interp(idx[inner], idx[valid], depth[valid])
    return out


def dej_entropy(
    entropy: np.ndarray, dej_um: np.ndarray, dz_um: float, *, band_um: float
) -> np.ndarray:
    """Mean entropy within ``±band_um`` of the DEJ in each column (2-D) or (y, x) (3-D).

    Interior gaps of the DEJ are bridged linearly along x first, so that a DEJ the
    mask does not show (a disruption) is still sampled; NaN where the DEJ is
    undefined.
    """
    dej = np.asarray(dej_um, float)
    dej = np.apply_along_axis(_interpolate_gaps_1d, -1, dej)
    half = max(band_um, 0.5 * dz_um)
    total = np.zeros(dej.shape)
    count = np.zeros(dej.shape)
    # plane by plane: memory of one (y, x) plane, not of the whole volume
    for k in range(entropy.shape[0]):
        inside = np.abs(k * dz_um - dej) <= half  # NaN compares False
        if inside.any():
            total += np.where(inside, entropy[k], 0.0)
            count += inside
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return np.where(np.isfinite(dej) & (count > 0), out, np.nan)


def uncertain_segments(
    profile: np.ndarray, dx_um: float, *, threshold: float, min_length_um: float
) -> list[list[float]]:
    """``[[x_start_um, x_end_um], ...]`` where ``profile > threshold`` over ≥ ``min_length_um``.

    A range runs from the first to the last column above the threshold (positions
    ``j·dx``); its length for ``min_length_um`` counts one ``dx`` per column.
    """
    above = np.asarray(profile) > threshold  # NaN compares False
    segments = []
    for start, stop in _runs(above):
        if (stop - start) * dx_um >= min_length_um:
            segments.append([start * dx_um, (stop - 1) * dx_um])
    return segments


def uncertain_area(
    entropy_map: np.ndarray,
    spacing_um: Sequence[float],
    *,
    threshold: float,
    min_length_um: float,
) -> np.ndarray:
    """Boolean (y, x) map of DEJ positions whose entropy exceeds ``threshold``.

    Connected regions smaller than a ``min_length_um`` × ``min_length_um`` square
    are dropped (the 3-D counterpart of the minimum segment length).
    """
    above = np.asarray(entropy_map) > threshold
    lab, n = ndimage.label(above)
    if n == 0:
        return above
    pixel_area = float(np.prod(spacing_um))
    sizes = np.bincount(lab.ravel()) * pixel_area
    keep = sizes >= min_length_um**2
    keep[0] = False
    return keep[lab]
