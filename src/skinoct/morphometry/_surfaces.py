"""Boundary surfaces of a volume from its segmented vertical sections (pure array functions).

``skinoct analyze`` segments the sections ``volume[:, y, :]`` (all, or every k-th)
and finds the three boundaries in each; these functions turn the stacked section
boundaries into (y, x) surfaces: linear interpolation between segmented sections,
outlier removal against a local median, filling of small holes for sampling, and
:func:`surfaces_on_grid`, the boundaries a label volume of these surfaces would hold,
computed on the (y, x) surfaces with :mod:`scipy.ndimage` instead of a label volume.
:func:`labels_from_surfaces` still builds that label volume (tests, benchmarks).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "crop_depth",
    "fill_nearest",
    "interpolate_rows",
    "labels_from_surfaces",
    "remove_outliers",
    "section_rows",
    "surfaces_on_grid",
]


def section_rows(n_rows: int, step: int) -> np.ndarray:
    """Rows to segment: every ``step``-th from 0, plus the last row (so nothing is extrapolated).

    Examples
    --------
    >>> section_rows(10, 4).tolist()
    [0, 4, 8, 9]
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be ≥ 1, got {n_rows}")
    if step < 1:
        raise ValueError(f"step must be ≥ 1, got {step}")
    rows = np.arange(0, n_rows, step)
    if rows[-1] != n_rows - 1:
        rows = np.append(rows, n_rows - 1)
    return rows


def interpolate_rows(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Linear interpolation along y of per-section values to every row.

    Parameters
    ----------
    values : ndarray, (len(rows), nx)
        A boundary depth (or any quantity) per segmented section and column; NaN
        where absent.
    rows : ndarray of int
        Increasing row index of each section (from :func:`section_rows`).
    n_rows : int
        Rows of the output.

    Returns
    -------
    ndarray, (n_rows, nx)
        Between two sections the value is interpolated linearly; it is NaN where
        either neighbouring section is NaN (a gap is not bridged across sections).
    """
    values = np.asarray(values, dtype=np.float64)
    rows = np.asarray(rows)
    if values.ndim != 2 or values.shape[0] != rows.size:
        raise ValueError(f"values must be (len(rows), nx), got {values.shape} for {rows.size} rows")
    if rows.size and (rows[0] != 0 or rows[-1] != n_rows - 1 or np.any(np.diff(rows) <= 0)):
        raise ValueError("rows must increase from 0 to n_rows - 1")
    if rows.size == n_rows:
        return values.copy()
    target = np.arange(n_rows)
    hi = np.clip(np.searchsorted(rows, target, side="left"), 1, rows.size - 1)
    lo = hi - 1
    w = ((target - rows[lo]) / (rows[hi] - rows[lo]))[:, None]
    out = values[lo] * (1 - w) + values[hi] * w
    exact = np.isin(target, rows)
    out[exact] = values[np.searchsorted(rows, target[exact])]
    return out


def fill_nearest(surface: np.ndarray) -> np.ndarray:
    """Replace NaN by the value of the nearest finite position (Euclidean, in pixels).

    Returns a copy; an all-NaN input comes back unchanged.
    """
    from scipy import ndimage

    surface = np.asarray(surface, dtype=np.float64)
    missing = ~np.isfinite(surface)
    if not missing.any() or missing.all():
        return surface.copy()
    idx = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return surface[tuple(idx)]


def remove_outliers(
    surface: np.ndarray,
    spacing_um,
    *,
    window_um: float = 11.0,
    threshold_um: float = 6.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace outliers of a (y, x) surface by the local median.

    A position is an outlier when it differs from the median of the
    ``window_um × window_um`` neighbourhood by more than ``threshold_um`` (a
    segmentation slip of a few pixels rows, not the smooth undulation of the DEJ,
    whose papillae are tens of µm wide). NaN positions stay NaN and do not count.

    Parameters
    ----------
    surface : ndarray, (y, x)
        Depths in µm, NaN where absent.
    spacing_um : (float, float)
        ``(dy, dx)``.
    window_um, threshold_um : float

    Returns
    -------
    cleaned : ndarray, (y, x)
    outliers : ndarray of bool, (y, x)
    """
    surface = np.asarray(surface, dtype=np.float64)
    if surface.ndim != 2:
        raise ValueError(f"surface must be 2-D (y, x), got shape {surface.shape}")
    if not (window_um > 0 and threshold_um > 0):
        raise ValueError("window_um and threshold_um must be positive")
    valid = np.isfinite(surface)
    if not valid.any():
        return surface.copy(), np.zeros(surface.shape, bool)
    size = tuple(max(1, 2 * round(window_um / (2 * s)) + 1) for s in spacing_um)
    # The median of scipy.ndimage.median_filter(fill_nearest(surface), size, mode="nearest"),
    # computed only where it can be more than threshold_um away (1 s → 0.2 s a surface
    # on a 500 × 1200 field).
    padded = np.pad(fill_nearest(surface), [((k - 1) // 2,) * 2 for k in size], mode="edge")
    candidates = np.flatnonzero(valid & _may_be_far(padded, size, surface, threshold_um))
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)  # a view, no copy
    outliers = np.zeros(surface.shape, bool)
    cleaned = surface.copy()
    for start in range(0, candidates.size, 65536):
        at = candidates[start : start + 65536]
        # odd window: the middle value itself, as median_filter's
        iy, ix = np.unravel_index(at, surface.shape)
        median = np.median(windows[iy, ix].reshape(at.size, -1), axis=1)
        far = np.abs(surface.ravel()[at] - median) > threshold_um
        outliers.ravel()[at[far]] = True
        cleaned.ravel()[at[far]] = median[far]
    return cleaned, outliers


def _may_be_far(padded: np.ndarray, size, surface: np.ndarray, threshold_um: float) -> np.ndarray:
    """Where the window median may differ from ``surface`` by more than ``threshold_um``.

    The median of an odd window exceeds ``t`` iff more than half of the window
    exceeds ``t``: counting, for each position, the window values above
    ``surface + threshold`` and below ``surface − threshold`` (minus a 1e-6 µm margin
    for rounding) gives a superset of the outliers without sorting any window.
    """
    half = (size[0] * size[1] + 1) // 2
    ny, nx = surface.shape
    hi = surface + (threshold_um - 1e-6)
    lo = surface - (threshold_um - 1e-6)
    # one-byte counters and one reused mask: a third less time than int32 temporaries
    count = np.uint8 if size[0] * size[1] < 256 else np.int32
    above = np.zeros(surface.shape, count)
    below = np.zeros(surface.shape, count)
    hit = np.empty(surface.shape, bool)
    for dy in range(size[0]):
        for dx in range(size[1]):
            window = padded[dy : dy + ny, dx : dx + nx]
            above += np.greater(window, hi, out=hit)
            below += np.less(window, lo, out=hit)
    return (above >= half) | (below >= half)


def labels_from_surfaces(
    surface: np.ndarray,
    sc_junction: np.ndarray,
    dej: np.ndarray,
    dz_um: float,
    n_z: int,
) -> np.ndarray:
    """A label volume (z, y, x) whose boundaries are the given surfaces.

    skinoct's pixel convention (:mod:`skinoct.morphometry`, :mod:`skinoct.phantom`):
    row ``i`` is the sample at depth ``i·dz``; it is air above ``surface``, stratum
    corneum down to ``sc_junction``, viable epidermis down to ``dej`` and dermis
    below (labels from ``i·dz ≥ boundary``), so
    :func:`skinoct.morphometry.extract_boundaries` reads each boundary back within
    ±dz/2. Where the SC junction is absent the epidermis starts at the surface;
    where the surface is absent the column holds dermis only below the DEJ.

    Returns
    -------
    ndarray of uint8, (n_z, y, x)
    """
    shape = np.shape(dej)
    if np.shape(surface) != shape or np.shape(sc_junction) != shape:
        raise ValueError("surface, sc_junction and dej must have one shape")
    if n_z < 1 or not dz_um > 0:
        raise ValueError("n_z must be ≥ 1 and dz_um > 0")

    def edge(depth):
        # index of the first row at or below the boundary; n_z + 1 where absent
        with np.errstate(invalid="ignore"):
            k = np.ceil(np.asarray(depth, np.float64) / dz_um - 1e-9)
        return np.where(np.isfinite(k), np.clip(k, 0, n_z), n_z + 1).astype(np.int32)

    k_surface, k_sc, k_dej = edge(surface), edge(sc_junction), edge(dej)
    has_sc = np.isfinite(sc_junction)
    first_label = np.where(has_sc, 1, 2).astype(np.uint8)
    labels = np.zeros((n_z, *shape), np.uint8)
    z = np.arange(n_z, dtype=np.int32).reshape((n_z,) + (1,) * len(shape))
    for k in range(0, n_z, 16):  # in slabs: no volume-sized temporaries
        zz = z[k : k + 16]
        slab = labels[k : k + 16]
        slab[...] = np.where(zz >= k_surface, first_label, 0)
        slab[zz >= k_sc] = 2
        slab[zz >= k_dej] = 3
    return labels


def crop_depth(dej: np.ndarray, dz_um: float, n_z: int, *, margin_um: float = 10.0) -> int:
    """Rows needed to hold every boundary: the deepest DEJ plus a margin, at most ``n_z``."""
    finite = np.asarray(dej)[np.isfinite(dej)]
    if finite.size == 0:
        return n_z
    return int(min(n_z, math.ceil((finite.max() + margin_um) / dz_um) + 1))


def _grid_edge(depth: np.ndarray, dz_um: float, n_z: int) -> np.ndarray:
    """Index of the first depth sample at or below a boundary; ``n_z + 1`` where absent."""
    with np.errstate(invalid="ignore"):
        k = np.ceil(np.asarray(depth, np.float64) / dz_um - 1e-9)
    return np.where(np.isfinite(k), np.clip(k, 0, n_z), n_z + 1).astype(np.int32)


def surfaces_on_grid(
    surface: np.ndarray,
    sc_junction: np.ndarray,
    dej: np.ndarray,
    *,
    dz_um: float,
    n_z: int,
) -> dict[str, np.ndarray]:
    """The raw boundaries that a label volume of these surfaces would give, without building it.

    Equals ``extract_boundaries(labels_from_surfaces(surface, sc_junction, dej, dz_um,
    n_z), spacing, smoothing_um=0).raw``: each boundary snapped to the depth grid (the
    first sample ``i·dz`` at or below it; read back half way between samples), the
    nesting of the layers, the clean-up of islands (lateral patches of a layer smaller
    than 1 % of the largest, by volume) and the validity rules of
    :func:`~skinoct.morphometry.extract_boundaries` — computed on the (y, x) surfaces:
    a region of a label volume built from surfaces fills each column from its top
    down to the bottom, so its connected components are the 8-connected patches of
    its footprint.

    Parameters
    ----------
    surface, sc_junction, dej : ndarray, (y, x)
        Depths in µm from the top of the volume, NaN where absent.
    dz_um : float
        Depth sampling, µm.
    n_z : int
        Depth samples of the volume (boundaries at or below ``n_z·dz`` are absent).

    Returns
    -------
    dict of str to ndarray
        ``surface``, ``sc_junction``, ``dej`` (µm, NaN where absent).
    """
    from scipy import ndimage

    from skinoct.morphometry._boundaries import (
        _MIN_COMPONENT_FRACTION,
        BOUNDARY_NAMES,
    )

    shape = np.shape(dej)
    if np.shape(surface) != shape or np.shape(sc_junction) != shape or len(shape) != 2:
        raise ValueError("surface, sc_junction and dej must be (y, x) arrays of one shape")
    if n_z < 1 or not dz_um > 0:
        raise ValueError("n_z must be ≥ 1 and dz_um > 0")
    k_surface, k_sc, k_dej = (_grid_edge(b, dz_um, n_z) for b in (surface, sc_junction, dej))
    has_sc = np.isfinite(sc_junction)
    # first sample of the regions labels ≥ 1, ≥ 2, ≥ 3 (labels never decrease with depth)
    firsts = (
        np.minimum(np.minimum(k_surface, k_sc), k_dej),
        np.minimum(np.where(has_sc, k_sc, k_surface), k_dej),
        k_dej,
    )
    eight = np.ones((3, 3), bool)
    parent = np.ones(shape, bool)
    tops = {}
    for name, first in zip(BOUNDARY_NAMES, firsts, strict=True):
        present = parent & (first < n_z)
        lab, n = ndimage.label(present, structure=eight)
        if n > 1:
            sizes = ndimage.sum_labels(n_z - first, lab, index=np.arange(1, n + 1))
            sizes = sizes.astype(np.int64)
            keep = np.concatenate([[False], ~(sizes < _MIN_COMPONENT_FRACTION * sizes.max())])
            present = keep[lab]
        tops[name] = np.where(present, first, n_z)
        parent = present
    raw = {}
    previous = None
    for name in BOUNDARY_NAMES:
        top = tops[name]
        valid = (top < n_z) & (top > 0)
        if previous is not None:
            valid &= previous < top
        raw[name] = np.where(valid, (top - 0.5) * dz_um, np.nan)
        previous = top
    return raw
