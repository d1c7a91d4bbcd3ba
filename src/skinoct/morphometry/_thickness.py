"""Layer thickness between two boundaries: vertical, or along the local normal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from skinoct.morphometry._smoothing import nan_gradient

__all__ = ["normal_thickness", "summarize", "vertical_thickness"]


def vertical_thickness(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Thickness along the depth axis: ``lower - upper`` (µm), NaN where either is."""
    return np.asarray(lower, float) - np.asarray(upper, float)


def normal_thickness(
    upper: np.ndarray,
    lower: np.ndarray,
    lateral_spacing_um: Sequence[float],
    *,
    step_um: float | None = None,
) -> np.ndarray:
    """Thickness measured along the normal of the upper boundary.

    From every point of ``upper`` a ray is cast along the inward normal of the
    upper surface, ``n ∝ (−∇upper, 1)``, until it meets ``lower``; the thickness is
    the length of that ray. For flat layers tilted by θ this is the vertical
    thickness × cos θ, the true thickness of the layer.

    Parameters
    ----------
    upper, lower : ndarray, (n_x,) or (n_y, n_x)
        Boundary depths in µm (NaN where absent), sampled at ``j·dx`` (and ``i·dy``).
    lateral_spacing_um : sequence of float
        ``(dx,)`` or ``(dy, dx)`` in µm.
    step_um : float, optional
        Ray-marching step; default half the finest lateral spacing. The crossing is
        interpolated linearly inside the step.

    Returns
    -------
    ndarray
        Same shape as ``upper``; NaN where ``upper`` or its slope is undefined or the
        ray leaves the image (or meets a gap of ``lower``) before reaching ``lower``.
    """
    upper = np.asarray(upper, float)
    lower = np.asarray(lower, float)
    spacing = tuple(float(s) for s in lateral_spacing_um)
    if upper.shape != lower.shape or upper.ndim != len(spacing):
        raise ValueError("upper and lower must have the same 1-D or 2-D shape as the spacing")
    gradients = [nan_gradient(upper, s, axis=a) for a, s in enumerate(spacing)]
    norm = np.sqrt(1.0 + sum(g**2 for g in gradients))
    start = np.isfinite(upper) & np.isfinite(norm)
    out = np.full(upper.shape, np.nan)
    if not start.any() or not np.isfinite(lower).any():
        return out
    idx = np.nonzero(start)
    z0 = upper[idx]
    nz_ = 1.0 / norm[idx]  # depth component of the unit normal
    n_lat = [-g[idx] / norm[idx] for g in gradients]
    pos0 = [i * s for i, s in zip(idx, spacing, strict=True)]
    step = 0.5 * min(spacing) if step_um is None else float(step_um)
    reach = (np.nanmax(lower) - np.nanmin(upper[start])) / nz_.min() + 2 * step
    n_steps = int(np.ceil(max(reach, 0) / step)) + 1

    def gap(s: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Ray depth minus ``lower`` at arc length ``s`` (NaN outside ``lower``)."""
        coords = [
            (p[active] + s * n[active]) / sp for p, n, sp in zip(pos0, n_lat, spacing, strict=True)
        ]
        low = ndimage.map_coordinates(lower, coords, order=1, mode="constant", cval=np.nan)
        return z0[active] + s * nz_[active] - low

    result = np.full(z0.shape, np.nan)
    active = np.ones(z0.shape, bool)
    prev = gap(0.0, active)
    active &= np.isfinite(prev) & (prev < 0)
    # a boundary pair touching (zero thickness) counts as 0
    result[np.isfinite(prev) & (prev >= 0)] = 0.0
    prev_full = np.where(active, prev, np.nan)
    for k in range(1, n_steps + 1):
        if not active.any():
            break
        s = k * step
        cur = np.full(z0.shape, np.nan)
        cur[active] = gap(s, active)
        hit = active & (cur >= 0)
        frac = prev_full[hit] / (prev_full[hit] - cur[hit])
        result[hit] = (k - 1 + frac) * step
        active &= ~hit & np.isfinite(cur)  # leaving the image or a gap ends the ray
        prev_full = cur
    out[idx] = result
    return out


def summarize(values: np.ndarray) -> dict[str, float]:
    """``{mean, median, sd, min, max}`` over the finite values (NaN when there are none).

    ``sd`` is the population standard deviation (ddof = 0) over columns.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "sd": nan, "min": nan, "max": nan}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "sd": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
    }
