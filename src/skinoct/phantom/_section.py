"""Vertical LC-OCT sections with exact ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skinoct.errors import InputError
from skinoct.phantom._appearance import Appearance, render_appearance
from skinoct.phantom._fields import LateralGrid
from skinoct.phantom._geometry import Geometry, build_geometry
from skinoct.phantom._params import SectionParams
from skinoct.phantom._render import build_scene, shade
from skinoct.phantom._textures import detect

__all__ = ["PhantomSection", "render_section"]

#: Names of the boundary curves, top to bottom (ARCHITECTURE.md conventions).
BOUNDARY_NAMES = ("surface", "sc_junction", "dej")


@dataclass(frozen=True)
class PhantomSection:
    """A rendered vertical section and its ground truth.

    Attributes
    ----------
    image : ndarray
        float32 ``(z, x)`` LC-OCT-like intensities, all positive.
    labels : ndarray
        uint8 ``(z, x)``: 0 air/gel, 1 stratum corneum, 2 viable epidermis, 3 dermis.
        Row ``i`` samples depth ``i·dz``; it is labelled by comparing that depth with
        the boundary curves, so the curves and the labels agree exactly.
    boundaries_um : dict of str to ndarray
        ``'surface'``, ``'sc_junction'``, ``'dej'``: depth in µm from the image top
        for each column, shape ``(n_x,)``; NaN where the boundary lies outside the
        image (no sample on one of its sides).
    spacing_um : tuple of float
        ``(dz, dx)``.
    disruption_um : tuple of float or None
        ``(x_start_um, x_end_um)`` of the disrupted DEJ segment, or None.
    params : SectionParams
        The parameters it was rendered with.
    """

    image: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    boundaries_um: dict[str, np.ndarray] = field(repr=False)
    spacing_um: tuple[float, float]
    disruption_um: tuple[float, float] | None
    params: SectionParams = field(repr=False)

    @property
    def x_um(self) -> np.ndarray:
        """Lateral position of each column in µm."""
        return np.arange(self.image.shape[1]) * self.spacing_um[1]


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer or a Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def visible_boundaries(geometry: Geometry, z_last_um: float) -> dict[str, np.ndarray]:
    """Boundary depths, NaN where no sample lies on one side (outside the image)."""
    out = {}
    for name in BOUNDARY_NAMES:
        b = np.array(getattr(geometry, name), dtype=np.float64)
        b[(b <= 0) | (b > z_last_um)] = np.nan
        out[name] = b
    return out


def render_section(
    params: SectionParams | None = None,
    *,
    seed: int | np.random.Generator = 0,
    appearance: Appearance | None = None,
) -> PhantomSection:
    """Render a vertical LC-OCT skin section with its label mask and boundary curves.

    Parameters
    ----------
    params : SectionParams, optional
        Skin, imaging and noise parameters; default face skin, 512 × 1200 px at 1 µm.
    seed : int or numpy.random.Generator
        Same seed and parameters give the same arrays.
    appearance : Appearance, optional
        Randomised look (layer levels and textures, optics, artefacts, noise; see
        :func:`sample_appearance`). It replaces ``params``' ``noise``, ``stripes``,
        ``blur_um`` and ``attenuation_per_mm``; geometry and labels are unchanged
        (same seed, same mask). None: the plain LC-OCT look.

    Returns
    -------
    PhantomSection

    Raises
    ------
    InputError
        If ``params`` is not a :class:`SectionParams`, ``appearance`` not an
        :class:`Appearance`, or ``seed`` is invalid
        (parameter values are checked when the :class:`SectionParams` is built).

    Examples
    --------
    >>> from skinoct.phantom import SectionParams, render_section
    >>> sec = render_section(SectionParams(width_um=300, depth_um=200), seed=1)
    >>> sec.image.shape, int(sec.labels.max())
    ((200, 300), 3)
    """
    if params is None:
        params = SectionParams()
    if not isinstance(params, SectionParams):
        raise InputError(f"params must be a SectionParams, got {type(params).__name__}")
    if appearance is not None and not isinstance(appearance, Appearance):
        raise InputError(f"appearance must be an Appearance, got {type(appearance).__name__}")
    rng = _rng(seed)
    nz, nx = params.shape
    dz, dx = params.spacing_um
    grid = LateralGrid((nx,), (dx,), y_um=float(rng.uniform(0.0, 1000.0)))
    geometry = build_geometry(grid, params, rng)
    z_last = (nz - 1) * dz
    scene = build_scene(
        grid, geometry, params, rng, depth_um=z_last, q=float(params.matrix_q),
        disruption=params.disruption,
    )  # fmt: skip
    if appearance is not None:
        image, labels = render_appearance(np.arange(nz) * dz, scene, (dz, dx), appearance, rng)
        return PhantomSection(
            image=image, labels=labels, boundaries_um=visible_boundaries(geometry, z_last),
            spacing_um=(dz, dx), disruption_um=params.disruption, params=params,
        )  # fmt: skip
    signal, labels = shade(np.arange(nz) * dz, scene)
    blur = None
    if params.blur_um > 0:
        sigma_um = params.blur_um / (2 * np.sqrt(2 * np.log(2)))
        blur = (sigma_um / dz, sigma_um / dx)
    image = detect(signal, rng, noise=params.noise, gain=scene.gain[None, :], blur_sigma_px=blur)
    return PhantomSection(
        image=image,
        labels=labels,
        boundaries_um=visible_boundaries(geometry, z_last),
        spacing_um=(dz, dx),
        disruption_um=params.disruption,
        params=params,
    )
