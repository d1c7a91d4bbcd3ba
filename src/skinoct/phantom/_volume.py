"""3-D LC-OCT volumes: the section model over a plane, with a depth-dependent matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from skinoct.errors import InputError
from skinoct.phantom._fields import LateralGrid
from skinoct.phantom._geometry import build_geometry
from skinoct.phantom._params import VolumeParams
from skinoct.phantom._render import build_scene, shade
from skinoct.phantom._section import _rng, visible_boundaries
from skinoct.phantom._textures import detect

__all__ = ["PhantomVolume", "render_volume", "resolve_q_profile"]

#: The dermal volume the seed scores: 70 µm below the DEJ (seed 002 §2.1).
SCORED_DEPTH_UM = 70
#: Depth planes rendered at once: bounds the temporaries (~25 arrays of
#: ``_CHUNK × ny × nx`` float32) whatever the volume size. Fixed, so the random
#: stream, hence the output, does not depend on the machine.
_CHUNK = 4


@dataclass(frozen=True)
class PhantomVolume:
    """A rendered LC-OCT volume and its ground truth.

    Attributes
    ----------
    volume : ndarray
        float32 ``(z, y, x)`` intensities, all positive. Every ``volume[:, y, :]`` is a
        vertical section of the :func:`render_section` model.
    labels : ndarray
        uint8 ``(z, y, x)``: 0 air, 1 SC, 2 epidermis, 3 dermis; plane ``k`` samples
        depth ``k·dz`` and is labelled against the boundary surfaces below.
    surface_um, sc_junction_um, dej_um : ndarray
        ``(y, x)`` boundary depths in µm from the top of the volume, NaN where the
        boundary lies outside it.
    depths_um : ndarray
        Depths below the local DEJ (0, 1, 2, … µm; at least 0–70 µm and down to the
        deepest dermis in the volume) at which ``q_profile`` is given.
    q_profile : ndarray
        Matrix quality q (1–4) at ``depths_um``: the dermis at depth ``d`` below the
        local DEJ has the en-face texture of quality ``q(d)``.
    spacing_um : tuple of float
        ``(dz, dy, dx)``.
    params : VolumeParams
    """

    volume: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    surface_um: np.ndarray = field(repr=False)
    sc_junction_um: np.ndarray = field(repr=False)
    dej_um: np.ndarray = field(repr=False)
    depths_um: np.ndarray = field(repr=False)
    q_profile: np.ndarray = field(repr=False)
    spacing_um: tuple[float, float, float]
    params: VolumeParams = field(repr=False)

    @property
    def mean_q(self) -> float:
        """Mean quality over the scored 0–70 µm below the DEJ (seed 002)."""
        scored = self.depths_um <= SCORED_DEPTH_UM
        return float(np.mean(self.q_profile[scored]))


def default_q_profile(depths_um: np.ndarray) -> np.ndarray:
    """Quality 3.2 at the DEJ, falling by 0.01 per µm (a young-looking matrix)."""
    return 3.2 - 0.01 * np.asarray(depths_um, dtype=float)


def resolve_q_profile(
    q_profile: Callable[[np.ndarray], np.ndarray] | np.ndarray | None, depths_um: np.ndarray
) -> np.ndarray:
    """Evaluate a q profile (callable, 1-µm array or None) at ``depths_um``, clipped to [1, 4].

    Raises
    ------
    InputError
        If a callable returns the wrong shape or non-finite values, or an array is not
        1-D and finite.
    """
    depths = np.asarray(depths_um, dtype=float)
    if q_profile is None:
        values = default_q_profile(depths)
    elif callable(q_profile):
        values = np.asarray(q_profile(depths), dtype=float)
        if values.shape != depths.shape:
            raise InputError(
                f"q_profile(depths_um) must return shape {depths.shape}, got {values.shape}"
            )
    else:
        arr = np.asarray(q_profile, dtype=float)
        if arr.ndim != 1 or arr.size == 0:
            raise InputError(f"q_profile array must be 1-D and non-empty, got shape {arr.shape}")
        values = np.interp(depths, np.arange(arr.size, dtype=float), arr)
    if not np.all(np.isfinite(values)):
        raise InputError("q_profile holds non-finite values")
    return np.clip(values, 1.0, 4.0)


def render_volume(
    params: VolumeParams | None = None,
    *,
    seed: int | np.random.Generator = 0,
    q_profile: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None,
) -> PhantomVolume:
    """Render an LC-OCT volume whose dermal-matrix quality varies with depth below the DEJ.

    The DEJ is a surface ``z = f(y, x)`` with papillae; the epidermis (cells) lies above
    it and the dermis (fibre matrix) below. The matrix texture is laid out in depth
    below the local DEJ, so an en-face slice cut ``d`` µm under the DEJ shows the
    texture of :func:`render_enface` with quality ``q(d)``.

    Parameters
    ----------
    params : VolumeParams, optional
        Default: face skin, 300 × 500 × 1200 µm at 1 µm (≈ 0.9 GB with labels;
        use a smaller ``size_um`` for tests).
    seed : int or numpy.random.Generator
    q_profile : callable or array, optional
        Overrides ``params.q_profile`` (see :class:`VolumeParams`).

    Returns
    -------
    PhantomVolume

    Raises
    ------
    InputError
        For a bad ``params``, seed or q profile.

    Examples
    --------
    >>> from skinoct.phantom import VolumeParams, render_volume
    >>> vol = render_volume(VolumeParams(size_um=(200, 64, 96)), q_profile=lambda d: 4 - d / 50)
    >>> vol.volume.shape, round(vol.mean_q, 2)
    ((200, 64, 96), 3.3)
    """
    if params is None:
        params = VolumeParams()
    if not isinstance(params, VolumeParams):
        raise InputError(f"params must be a VolumeParams, got {type(params).__name__}")
    rng = _rng(seed)
    nz, ny, nx = params.shape
    dz, dy, dx = params.spacing_um
    grid = LateralGrid((ny, nx), (dy, dx))
    geometry = build_geometry(grid, params, rng, tilt_y_deg=params.tilt_y_deg)
    z_last = (nz - 1) * dz
    deepest = max(0.0, z_last - float(np.min(geometry.dej_base)))
    depths = np.arange(max(SCORED_DEPTH_UM, math.ceil(deepest)) + 1, dtype=float)
    q = resolve_q_profile(params.q_profile if q_profile is None else q_profile, depths)
    scene = build_scene(grid, geometry, params, rng, depth_um=z_last, q=(depths, q))
    volume = np.empty((nz, ny, nx), dtype=np.float32)
    labels = np.empty((nz, ny, nx), dtype=np.uint8)
    z = np.arange(nz) * dz
    gain = scene.gain[None, None, :]
    for start in range(0, nz, _CHUNK):
        stop = min(nz, start + _CHUNK)
        signal, labels[start:stop] = shade(z[start:stop], scene)
        detect(signal, rng, noise=params.noise, gain=gain, out=volume[start:stop])
    bounds = visible_boundaries(geometry, z_last)
    return PhantomVolume(
        volume=volume, labels=labels, surface_um=bounds["surface"],
        sc_junction_um=bounds["sc_junction"], dej_um=bounds["dej"], depths_um=depths,
        q_profile=q, spacing_um=(dz, dy, dx), params=params,
    )  # fmt: skip
