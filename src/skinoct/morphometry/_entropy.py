"""Segmentation uncertainty along the DEJ (softmax entropy of the layer model).

Seed 000 (Dauce, Damae Medical) proposes the entropy of the segmentation model as
"an indicator of atypical morphological features, such as disruptions in the DEJ".
Here the entropy map is sampled in a band around the DEJ, column by column (or at
each (y, x) of a volume); stretches where it stays above a threshold over a minimum
length are reported as uncertain DEJ segments (areas in 3-D).

The entropy is expected normalised to [0, 1] (Shannon entropy of the class
probabilities divided by ln 4 for the four skinoct classes).

The threshold is calibrated per model (``skinoct.layers.calibrate_uncertainty``): the
quantile of :func:`dej_flag_score` over clean sections, stored under the manifest's
``uncertainty`` key together with the half-height of the DEJ band (``entropy_band_um``)
and the minimum flagged length (``min_segment_um``) it was computed with: a threshold
holds only for those. :func:`default_entropy_threshold`,
:func:`default_entropy_band_um` and :func:`default_min_segment_um` return the bundled
layer model's calibrated values (the ``FALLBACK_*`` constants if it was never
calibrated).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from skinoct.errors import InputError
from skinoct.morphometry._undulation import _runs

__all__ = [
    "FALLBACK_ENTROPY_BAND_UM",
    "FALLBACK_ENTROPY_THRESHOLD",
    "FALLBACK_MIN_SEGMENT_UM",
    "check_entropy",
    "default_entropy_band_um",
    "default_entropy_threshold",
    "default_min_segment_um",
    "dej_entropy",
    "dej_flag_score",
    "excess_dej_entropy",
    "uncertain_area",
    "uncertain_dej_area",
    "uncertain_segments",
]

#: Used only when the bundled layer model's manifest holds no calibration: the 0.9
#: quantile calibration of the phantom-trained bundled model of round 1 (weights
#: ``5fe4aab7…``, 40 clean phantoms; docs/layers.md). Run scripts/calibrate_layers.py
#: on a new bundled model so that its own value is stored in its manifest.
FALLBACK_ENTROPY_THRESHOLD = 0.15
#: The band (µm either side of the DEJ) that :data:`FALLBACK_ENTROPY_THRESHOLD` was
#: calibrated at.
FALLBACK_ENTROPY_BAND_UM = 5.0
#: ... and the minimum flagged length it was calibrated at.
FALLBACK_MIN_SEGMENT_UM = 20.0
_BUNDLED_LAYERS_MANIFEST = (
    Path(__file__).resolve().parents[1] / "models" / "bundled" / "layers" / "model.json"
)


def default_entropy_threshold() -> float:
    """The DEJ-entropy threshold of the bundled layer model (its manifest's calibration).

    ``uncertainty.dej_entropy_threshold`` of ``skinoct/models/bundled/layers/model.json``
    (written by ``scripts/calibrate_layers.py``); :data:`FALLBACK_ENTROPY_THRESHOLD`
    when that key is missing. Read once per process, without importing torch.
    """
    return _bundled_calibration(str(_BUNDLED_LAYERS_MANIFEST))[0]


def default_entropy_band_um() -> float:
    """Half-height (µm) of the DEJ band the bundled model's threshold was calibrated at.

    ``uncertainty.entropy_band_um`` of the bundled layer model's manifest;
    :data:`FALLBACK_ENTROPY_BAND_UM` when the manifest holds no calibration (the
    threshold then is :data:`FALLBACK_ENTROPY_THRESHOLD`, calibrated at that band).
    """
    return _bundled_calibration(str(_BUNDLED_LAYERS_MANIFEST))[1]


def default_min_segment_um() -> float:
    """Minimum flagged DEJ length (µm) the bundled model's threshold was calibrated at.

    ``uncertainty.min_segment_um`` of the bundled layer model's manifest;
    :data:`FALLBACK_MIN_SEGMENT_UM` when the manifest holds no calibration.
    """
    return _bundled_calibration(str(_BUNDLED_LAYERS_MANIFEST))[2]


@functools.lru_cache(maxsize=4)
def _bundled_calibration(path: str) -> tuple[float, float, float]:
    fallback = (FALLBACK_ENTROPY_THRESHOLD, FALLBACK_ENTROPY_BAND_UM, FALLBACK_MIN_SEGMENT_UM)
    try:
        block = json.loads(Path(path).read_text(encoding="utf-8"))["uncertainty"]
        value = float(block["dej_entropy_threshold"])
        band = float(block.get("entropy_band_um", FALLBACK_ENTROPY_BAND_UM))
        length = float(block.get("min_segment_um", FALLBACK_MIN_SEGMENT_UM))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return fallback
    sizes = (band, length)
    valid = 0 <= value <= 1 and all(math.isfinite(v) and v >= 0 for v in sizes)
    return (value, band, length) if valid else fallback


def excess_dej_entropy(profile: np.ndarray, dej_um: np.ndarray, lateral_spacing_um) -> np.ndarray:
    """The DEJ entropy that flags are thresholded on: slope-corrected, above the section's median.

    Two corrections of the band mean of :func:`dej_entropy`, measured on phantoms where
    the raw value does not separate disrupted from clean DEJ (docs/layers.md):

    * a vertical band crosses a boundary of slope ``s`` over ``sqrt(1 + s²)`` times its
      normal width, so steep papilla flanks look uncertain; dividing by that factor
      gives the entropy per unit length along the normal;
    * the model's baseline entropy differs between sections (noise, depth); the
      section's (or volume's) median is subtracted, so a flag means "more uncertain
      here than elsewhere along this DEJ".

    Parameters
    ----------
    profile : ndarray, (x,) or (y, x)
        :func:`dej_entropy` output.
    dej_um : ndarray, same shape
        DEJ depth (µm), NaN where absent.
    lateral_spacing_um : sequence of float
        ``(dx,)`` or ``(dy, dx)``.

    Returns
    -------
    ndarray of float
        Same shape; NaN where ``profile`` is NaN.
    """
    profile = np.asarray(profile, dtype=float)
    dej = np.asarray(dej_um, dtype=float)
    spacing = tuple(float(s) for s in np.atleast_1d(lateral_spacing_um))
    filled = np.apply_along_axis(_interpolate_gaps_1d, -1, dej)
    squared = np.zeros(dej.shape)
    for axis, step in zip(range(dej.ndim), spacing[-dej.ndim :], strict=True):
        if dej.shape[axis] > 1:
            squared += np.gradient(filled, step, axis=axis) ** 2
    corrected = profile / np.sqrt(1.0 + np.nan_to_num(squared, nan=0.0))
    finite = corrected[np.isfinite(corrected)]
    return corrected - (np.median(finite) if finite.size else 0.0)


def dej_flag_score(profile: np.ndarray, dx_um: float, *, min_length_um: float) -> float:
    """The highest threshold at which :func:`uncertain_segments` would flag this profile.

    Max over every window of ``ceil(min_length_um / dx_um)`` consecutive columns of the
    window's minimum entropy (NaN columns break windows): a section gets an uncertain
    segment at threshold ``t`` exactly when its score is above ``t``. Calibration takes
    a quantile of this score over clean sections, so the per-section false-flag rate on
    such sections is one minus the quantile. NaN when no window is defined.

    Examples
    --------
    >>> dej_flag_score(np.array([0.1, 0.6, 0.7, 0.2]), 10.0, min_length_um=20.0)
    0.6
    """
    values = np.asarray(profile, dtype=float)
    n = max(1, math.ceil(float(min_length_um) / float(dx_um) - 1e-9))
    if values.ndim != 1 or values.size < n:
        return float("nan")
    values = np.where(np.isfinite(values), values, -np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(values, n)
    best = float(windows.min(axis=1).max())
    return best if math.isfinite(best) else float("nan")


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
    nz = entropy.shape[0]
    total = np.zeros(dej.shape)
    count = np.zeros(dej.shape)
    # Only the rows that can lie within the band are visited (a dozen, not every row),
    # each column's rows in increasing depth as a full scan would add them, and each
    # tested with the same expression: the sums are bit for bit those of the scan.
    finite = np.isfinite(dej)
    first = np.where(finite, np.floor((dej - half) / dz_um) - 1, 0).clip(-1, nz).astype(np.intp)
    for offset in range(int(np.floor(2 * half / dz_um)) + 4):
        k = first + offset
        inside = (k >= 0) & (k < nz) & (np.abs(k * dz_um - dej) <= half)  # NaN compares False
        if inside.any():
            rows = np.take_along_axis(entropy, k.clip(0, nz - 1)[None], axis=0)[0]
            total += np.where(inside, rows, 0.0)
            count += inside
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return np.where(finite & (count > 0), out, np.nan)


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


def uncertain_dej_area(
    entropy_map: np.ndarray,
    dej_um: np.ndarray,
    lateral_spacing_um: Sequence[float],
    *,
    threshold: float | None = None,
    min_length_um: float | None = None,
) -> np.ndarray:
    """The flag of a volume's DEJ: :func:`uncertain_area` of :func:`excess_dej_entropy`.

    ``entropy_map`` is the DEJ-band entropy per (y, x) (:func:`dej_entropy`, NaN where
    the DEJ is absent), averaged over the band the threshold was calibrated at;
    ``threshold`` and ``min_length_um`` default to :func:`default_entropy_threshold`
    and :func:`default_min_segment_um` (pass
    ``skinoct.layers.dej_flag_settings(model)`` values for the model used). What
    :func:`~skinoct.morphometry.measure_volume` flags, for callers that build the DEJ
    entropy map themselves (``study.analyze``).
    """
    if threshold is None:
        threshold = default_entropy_threshold()
    if min_length_um is None:
        min_length_um = default_min_segment_um()
    excess = excess_dej_entropy(entropy_map, dej_um, lateral_spacing_um)
    return uncertain_area(
        np.nan_to_num(excess, nan=-1.0),
        lateral_spacing_um,
        threshold=threshold,
        min_length_um=min_length_um,
    )
