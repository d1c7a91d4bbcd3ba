"""NaN-aware smoothing of boundary profiles and surfaces.

A boundary read column by column from a label mask is a staircase: its depth is
quantised to the pixel size. Differentiating or measuring the length of that
staircase over-estimates the length of the true curve (by about 7 % for a
sinusoidal DEJ at 1 µm pixels). We estimate the boundary instead by local
quadratic regression with Gaussian weights (a Gaussian-weighted Savitzky–Golay /
LOESS fit, Cleveland & Devlin 1988): at every position a quadratic is fitted to the
valid samples within ±3σ, each weighted by ``exp(-d²/2σ²)``, and its value there is
the smoothed depth.

Why quadratic: in the interior the equivalent kernel of the local quadratic fit has
the frequency response ``(1 + t)·exp(-t)`` with ``t = σ²ω²/2``, i.e. ``1 - t²/2`` at
low frequency instead of ``1 - t`` for a plain Gaussian. A sinusoidal DEJ of period
40 µm keeps 99.9 % of its amplitude at σ = 2 µm (a Gaussian keeps 95 %), while the
pixel staircase, whose period is a few pixels, is removed. Because the fit is local
and weighted, missing samples (NaN) and the image edges need no padding: a straight
boundary is reproduced exactly up to the edge, which matters for tilted skin. Where
the window is one-sided (the image edge, next to a gap) a quadratic would extrapolate
the staircase noise, so the fit blends to a local-linear one there.

References
----------
Cleveland WS, Devlin SJ (1988). Locally weighted regression: an approach to
regression analysis by local fitting. J Am Stat Assoc 83:596–610.
Savitzky A, Golay MJE (1964). Smoothing and differentiation of data by simplified
least squares procedures. Anal Chem 36:1627–1639.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["nan_gradient", "smooth_boundary"]

_TRUNCATE = 3.0  # kernel half-width in σ
_CHUNK = 65536  # positions solved at once (bounds memory for large surfaces)
#: A one-sided window (image edge, gap) makes the quadratic fit noisy: the fit blends
#: to local-linear as the weighted centre of the samples moves from 0.1σ to 0.4σ
#: off the position (a half window is 0.8σ off).
_ASYM_QUADRATIC, _ASYM_LINEAR = 0.1, 0.4
_RIDGE = 1e-6  # relative ridge on the non-constant terms: keeps sparse windows solvable


def smooth_boundary(
    values: np.ndarray, spacing_um: Sequence[float], *, sigma_um: float
) -> np.ndarray:
    """Smooth a 1-D profile or 2-D surface by Gaussian-weighted local quadratic regression.

    Parameters
    ----------
    values : ndarray, 1-D (x,) or 2-D (y, x)
        Depths in µm; NaN marks missing samples.
    spacing_um : sequence of float
        Sample spacing in µm along each axis of ``values``.
    sigma_um : float
        Standard deviation of the Gaussian weights in µm; 0 returns a copy.

    Returns
    -------
    ndarray
        Same shape; NaN wherever ``values`` is NaN (gaps are not filled).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim not in (1, 2) or len(spacing_um) != values.ndim:
        raise ValueError(
            f"values must be 1-D or 2-D with one spacing per axis, got shape {values.shape} "
            f"and spacing {tuple(spacing_um)}"
        )
    if sigma_um < 0 or not np.isfinite(sigma_um):
        raise ValueError(f"sigma_um must be a finite number >= 0, got {sigma_um}")
    valid = np.isfinite(values)
    if sigma_um == 0 or not valid.any():
        return values.copy()
    weights = valid.astype(float)
    data = np.where(valid, values, 0.0)
    kernels = [_kernels(sigma_um, float(s)) for s in spacing_um]
    if values.ndim == 1:
        powers = [(i,) for i in range(3)]
    else:
        powers = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    n = len(powers)
    pairs = {tuple(a + b for a, b in zip(pi, pj, strict=True)) for pi in powers for pj in powers}
    idx = np.flatnonzero(valid)
    # Where the whole window holds valid samples (most of a surface), the weighted
    # moments are those of the full kernel and the window is symmetric (pure quadratic
    # fit): the fit is one fixed linear combination of the data moments (the
    # equivalent kernel), so only the other positions need the moments of the weights
    # and a solve of their own.
    size = tuple(len(k[0]) for k in kernels)
    full = ndimage.minimum_filter(valid, size=size, mode="constant", cval=False).ravel()[idx]
    rest = np.flatnonzero(~full)
    rhs = np.stack(list(_moments(data, powers, kernels, idx).values()), axis=-1)
    coef = np.empty(idx.size)
    if full.any():
        gram = np.empty((n, n))
        for i, pi in enumerate(powers):
            for j, pj in enumerate(powers):
                exps = tuple(a + b for a, b in zip(pi, pj, strict=True))
                gram[i, j] = np.prod([kernels[ax][k].sum() for ax, k in enumerate(exps)])
        diag = np.arange(1, n)
        gram[diag, diag] += _RIDGE * gram[0, 0]
        coef[full] = rhs[full] @ np.linalg.solve(gram, np.eye(n)[0])
    if rest.size:
        moments = _moments(weights, sorted(pairs), kernels, idx[rest])
        coef[rest] = _local_fit(moments, rhs[rest], powers)
    out = np.full(values.shape, np.nan)
    # 1e-9 µm rounding drops the solver's float noise (a flat boundary stays exactly flat)
    out.ravel()[idx] = np.round(coef, 9)
    return out


def _moments(image, exps_list, kernels, at) -> dict[tuple[int, ...], np.ndarray]:
    """``{exps: Σ image · Π_axis kernel_axis[exps[axis]]}`` at the flat positions ``at``.

    Separable correlations, axis by axis; the partial correlations along the leading
    axes are shared between the moments that start alike (5 passes along y serve the
    15 weight moments of a surface).
    """
    partial: dict[tuple[int, ...], np.ndarray] = {(): image}
    out = {}
    for exps in exps_list:
        for axis in range(len(exps)):
            key = exps[: axis + 1]
            if key not in partial:
                partial[key] = ndimage.correlate1d(
                    partial[exps[:axis]], kernels[axis][exps[axis]], axis=axis, mode="constant"
                )
        out[exps] = partial.pop(exps).ravel()[at]  # the last pass is used once
    return out


def _local_fit(moments, rhs: np.ndarray, powers) -> np.ndarray:
    """Weighted local quadratic fit, blended to local-linear where the window is one-sided.

    ``moments`` are the weight moments and ``rhs`` the data moments at the positions
    whose window is not whole (image edge, gap).
    """
    n, ndim = len(powers), len(powers[0])
    n_linear = 1 + ndim  # constant and first-order terms come first in ``powers``
    # window asymmetry: distance (in σ) of the weighted centre of the valid samples
    m0 = moments[(0,) * ndim]
    unit = [tuple(int(a == b) for b in range(ndim)) for a in range(ndim)]
    asym = np.sqrt(sum((moments[u] / m0) ** 2 for u in unit))
    linear_weight = np.clip((asym - _ASYM_QUADRATIC) / (_ASYM_LINEAR - _ASYM_QUADRATIC), 0, 1)
    coef = np.empty(rhs.shape[0])
    for start in range(0, rhs.shape[0], _CHUNK):
        sel = slice(start, start + _CHUNK)
        size = rhs[sel].shape[0]
        gram = np.empty((size, n, n))
        for i, pi in enumerate(powers):
            for j, pj in enumerate(powers):
                gram[:, i, j] = moments[tuple(a + b for a, b in zip(pi, pj, strict=True))][sel]
        diag = np.arange(1, n)
        gram[:, diag, diag] += _RIDGE * gram[:, :1, 0]
        quadratic = np.linalg.solve(gram, rhs[sel, :, None])[:, 0, 0]
        sub = gram[:, :n_linear, :n_linear]
        linear = np.linalg.solve(sub, rhs[sel, :n_linear, None])[:, 0, 0]
        w = linear_weight[sel]
        coef[sel] = (1 - w) * quadratic + w * linear
    return coef


def _kernels(sigma_um: float, spacing: float) -> list[np.ndarray]:
    """Weights ``g(u)·u**k`` for k = 0…4, with u in units of σ."""
    radius = max(1, int(np.ceil(_TRUNCATE * sigma_um / spacing)))
    u = np.arange(-radius, radius + 1) * spacing / sigma_um
    g = np.exp(-0.5 * u**2)
    return [g * u**k for k in range(5)]


def nan_gradient(values: np.ndarray, spacing_um: float, *, axis: int = -1) -> np.ndarray:
    """Derivative along ``axis`` (per µm): central differences, one-sided next to NaN.

    NaN only where the sample is NaN or has no valid neighbour along ``axis``.
    """
    values = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    out = np.full(values.shape, np.nan)
    if values.shape[-1] < 2:
        return np.moveaxis(out, -1, axis)
    left = np.full(values.shape, np.nan)
    right = np.full(values.shape, np.nan)
    left[..., 1:] = values[..., 1:] - values[..., :-1]  # backward difference
    right[..., :-1] = values[..., 1:] - values[..., :-1]  # forward difference
    both = np.isfinite(left) & np.isfinite(right)
    out[both] = 0.5 * (left[both] + right[both])
    only_left = np.isfinite(left) & ~both
    only_right = np.isfinite(right) & ~both
    out[only_left] = left[only_left]
    out[only_right] = right[only_right]
    return np.moveaxis(out / spacing_um, -1, axis)
