"""Layer geometry: the surface, SC junction and DEJ on a lateral grid.

The same function builds the curves of a vertical section (a row) and the surfaces
of a volume (a plane); a row has the statistics of one line of the plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skinoct.phantom._fields import GaussianSpectrum, LateralGrid, RingSpectrum

__all__ = ["Geometry", "build_geometry"]

#: Correlation length of the surface micro-relief and of the SC thickness changes.
_RELIEF_UM = 40.0
_SC_VARIATION_UM = 60.0
_SC_RELATIVE_SD = 0.08
#: Rete-ridge protrusions: depth and Gaussian s.d. ranges in µm (histology: rete
#: ridges reach 20–50 µm into the dermis; Giangreco et al. 2010, J Pathol 220:538).
_PROTRUSION_DEPTH_UM = (15.0, 35.0)
_PROTRUSION_SIGMA_UM = (5.0, 10.0)


@dataclass(frozen=True)
class Geometry:
    """Boundary depths in µm from the image top, each of the grid's shape."""

    surface: np.ndarray
    sc_junction: np.ndarray
    dej: np.ndarray
    #: The DEJ without the individual protrusions: the dermis texture is laid out
    #: relative to it, so narrow rete ridges do not drag the fibres down with them.
    dej_base: np.ndarray


def build_geometry(
    grid: LateralGrid, params, rng: np.random.Generator, *, tilt_y_deg: float = 0.0
) -> Geometry:
    """Draw the three boundary surfaces of ``params`` (a section or volume record)."""
    y, x = grid.centred()
    c = params.curvature / 1000.0  # 1/mm -> 1/µm
    tx, ty = math.tan(math.radians(params.tilt_deg)), math.tan(math.radians(tilt_y_deg))
    r2 = x**2 + (0.0 if grid.is_row else y**2)
    smooth = params.surface_depth_um + tx * x + ty * y + 0.5 * c * r2
    # Thicknesses are perpendicular to the skin: vertical = true / cos(local slope).
    slope2 = (tx + c * x) ** 2 + (0.0 if grid.is_row else (ty + c * y) ** 2)
    stretch = np.sqrt(1.0 + slope2)

    relief = grid.field(rng, GaussianSpectrum(_RELIEF_UM))
    sc_var = grid.field(rng, GaussianSpectrum(_SC_VARIATION_UM))
    bandwidth = 0.12 + 0.6 * params.dej_irregularity
    undulation = grid.field(rng, RingSpectrum(params.dej_wavelength_um, bandwidth=bandwidth))
    undulation = undulation - undulation.mean()
    surface = smooth + params.roughness_um * relief
    sc = params.sc_um * np.clip(1.0 + _SC_RELATIVE_SD * sc_var, 0.5, 1.5)
    sc_junction = surface + sc * stretch
    epi = params.epidermis_um + params.dej_amplitude_um / math.sqrt(2.0) * undulation
    epi = np.maximum(epi, max(2.0, 0.3 * params.epidermis_um))
    dej_base = sc_junction + epi * stretch
    dej = dej_base + _protrusions(grid, params.n_protrusions, rng)
    return Geometry(
        surface=np.asarray(surface, dtype=np.float64),
        sc_junction=np.asarray(sc_junction, dtype=np.float64),
        dej=np.asarray(dej, dtype=np.float64),
        dej_base=np.asarray(dej_base, dtype=np.float64),
    )


def _protrusions(grid: LateralGrid, n: int, rng: np.random.Generator) -> np.ndarray | float:
    """Sum of ``n`` Gaussian downward bumps (rete ridges) at random positions."""
    if n == 0:
        return 0.0
    y, x = grid.coords(np.float64)
    width = grid.shape[-1] * grid.spacing_um[-1]
    out = np.zeros(grid.shape, dtype=np.float64)
    for _ in range(n):
        depth = rng.uniform(*_PROTRUSION_DEPTH_UM)
        sigma = rng.uniform(*_PROTRUSION_SIGMA_UM)
        px = rng.uniform(0.05, 0.95) * width
        r2 = (x - px) ** 2
        if not grid.is_row:
            height = grid.shape[0] * grid.spacing_um[0]
            r2 = r2 + (y - rng.uniform(0.05, 0.95) * height) ** 2
        out += depth * np.exp(-0.5 * r2 / sigma**2)
    return out
