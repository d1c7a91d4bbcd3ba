"""Shading: from geometry and textures to LC-OCT-like signal and labels.

:func:`shade` renders a block of depths over a lateral grid. A vertical section is
one block over a row grid; a volume is a sequence of blocks over a plane grid, so
both go through exactly the same code.

Reflectance levels (relative units; the dermis is ~0.5 before attenuation) follow
the look of LC-OCT skin images (Monnier et al. 2020, JEADV 34:2914; Ruini et al.
2021, Skin Res Technol 27:340): a very bright entrance line at the surface,
a hyper-reflective stratum corneum, a grey cellular epidermis with dark nuclei,
a bright basal layer (melanin) on the DEJ, and a fibrous dermis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skinoct.io import EPIDERMIS, STRATUM_CORNEUM
from skinoct.phantom._fields import GaussianSpectrum, LateralGrid
from skinoct.phantom._geometry import Geometry
from skinoct.phantom._textures import (
    CellTable,
    MatrixFields,
    cell_texture,
    lamella_phase_field,
    lamellae,
    make_cells,
    matrix_fields,
    matrix_intensity,
    sample_matrix,
    stripe_gain,
)

__all__ = ["Scene", "build_scene", "shade"]

_AIR_LEVEL = 0.012  #: immersion gel / air
_ENTRANCE_LEVEL = 1.8  #: specular entrance line at the surface
_ENTRANCE_UM = 1.5  #: its 1/e half-width
_SC_LEVEL = 0.85
_SC_LAMELLA_UM = 3.0  #: period of the corneocyte lamellae
_EPIDERMIS_LEVEL = 0.4
_BASAL_UM = 5.0  #: 1/e half-width of the basal band, centred 4 µm above the DEJ
_DERMIS_LEVEL = 0.9
_SHARP_UM = 0.5  #: half-width of the normal epidermis–dermis transition
_DISRUPTED_UM = 12.0  #: half-width inside a DEJ disruption
_DISRUPTED_JITTER_UM = 10.0  #: s.d. of the irregular apparent junction there
_RAMP_UM = 15.0  #: width of the edges of a disruption segment
_WARP_UM = 8.0  #: correlation length of the cell-lattice displacement
_FOLLOW_UM = 70.0  #: depth below the DEJ down to which the fibres follow it exactly
_RELAX_UM = 30.0  #: depth scale over which the fibre layout forgets the DEJ shape


@dataclass(frozen=True)
class Scene:
    """Everything :func:`shade` needs besides the depths."""

    grid: LateralGrid
    geometry: Geometry
    cells: CellTable
    matrix: MatrixFields
    sc_phase: np.ndarray  #: lamella phase, radians, grid shape
    cell_warp: tuple[np.ndarray, ...]  #: cell displacement (rows, y, x cells), grid shape
    dej_texture: np.ndarray  #: apparent junction used for the texture transition
    blend_um: np.ndarray | float  #: half-width of that transition
    basal: np.ndarray | float  #: basal-layer brightness
    q: float | tuple[np.ndarray, np.ndarray]  #: matrix quality, or (depths_um, q)
    relax_um: float  #: depth over which the fibre layout relaxes from the DEJ to flat
    lamella_phase: np.ndarray  #: lateral phase of the dermal lamellae (radians)
    attenuation_per_mm: tuple[float, float, float]
    gain: np.ndarray  #: per-column stripe gain, shape (nx,)
    entrance_level: float = _ENTRANCE_LEVEL  #: peak of the specular entrance line


def build_scene(
    grid: LateralGrid,
    geometry: Geometry,
    params,
    rng: np.random.Generator,
    *,
    depth_um: float,
    q,
    disruption: tuple[float, float] | None = None,
) -> Scene:
    """Draw the textures of a rendering (after its geometry, in a fixed order)."""
    cells = make_cells(rng)
    # Depths below the DEJ the dermis texture is sampled at (the transition reaches
    # above the DEJ inside a disruption).
    d_min = -(_DISRUPTED_UM + 3 * _DISRUPTED_JITTER_UM) if disruption is not None else -2.0
    d_max = max(depth_um - float(np.min(geometry.dej_base)), 0.0) + 1.0
    # Texture coordinate t = d + (dej − mean)(1 − exp(−d/L)) stays monotonic in depth
    # when L >= 2 max|dej − mean|.
    relax_um = max(
        _RELAX_UM, 2.0 * float(np.max(np.abs(geometry.dej_base - geometry.dej_base.mean())))
    )
    spread = float(np.ptp(geometry.dej_base))
    matrix = matrix_fields(grid, rng, d_min - spread, d_max + spread)
    sc_phase = grid.field(rng, GaussianSpectrum(60.0)) * np.float32(2.0)
    # Smooth displacements (s.d. 0.25 cell, correlation 8 µm: no fold-over) turn the
    # lattice of cells into irregular polygons.
    wu, wy = grid.field_pairs(rng, GaussianSpectrum(_WARP_UM), 1)
    wx = grid.field(rng, GaussianSpectrum(_WARP_UM))
    cell_warp = tuple(np.ascontiguousarray(w) * np.float32(0.25) for w in (wu[0], wy[0], wx))
    gain = stripe_gain(rng, grid.shape[-1], params.stripes)
    lamella_phase = lamella_phase_field(grid, rng)
    basal = 0.08 + 0.9 * params.pigmentation
    dej_texture, blend = geometry.dej, _SHARP_UM
    if disruption is not None:
        _, x = grid.coords(np.float64)
        x0, x1 = disruption
        m = np.clip(np.minimum(x - x0, x1 - x) / _RAMP_UM + 0.5, 0.0, 1.0)
        m = m * m * (3 - 2 * m)
        jitter = grid.field(rng, GaussianSpectrum(6.0)) * _DISRUPTED_JITTER_UM
        dej_texture = geometry.dej + m * jitter
        blend = _SHARP_UM + (_DISRUPTED_UM - _SHARP_UM) * m
        basal = basal * (1.0 - m)
    return Scene(
        grid=grid, geometry=geometry, cells=cells, matrix=matrix, sc_phase=sc_phase,
        cell_warp=cell_warp,
        dej_texture=np.asarray(dej_texture), blend_um=blend, basal=basal, q=q,
        relax_um=relax_um, lamella_phase=lamella_phase,
        attenuation_per_mm=tuple(params.attenuation_per_mm), gain=gain,
    )  # fmt: skip


def _rows(z: np.ndarray, lo: float, hi: float) -> slice:
    return slice(int(np.searchsorted(z, lo, "left")), int(np.searchsorted(z, hi, "right")))


def shade(z_um: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free signal and labels for depths ``z_um`` (1-D, increasing).

    Returns float32 and uint8 arrays of shape ``(len(z_um), *grid.shape)``. A sample
    at depth ``z`` is labelled air if ``z < surface``, SC if ``surface <= z <
    sc_junction``, epidermis if ``sc_junction <= z < dej``, dermis otherwise.
    """
    grid, geo = scene.grid, scene.geometry
    z = np.asarray(z_um, dtype=np.float32)
    lateral = (slice(None),) + (None,) * len(grid.shape)
    zz = z[lateral]
    f32 = np.float32
    s, scj, dej = (a.astype(np.float32)[None] for a in (geo.surface, geo.sc_junction, geo.dej))
    labels = (zz >= s).view(np.uint8) + (zz >= scj).view(np.uint8) + (zz >= dej).view(np.uint8)
    out = np.full(labels.shape, _AIR_LEVEL, dtype=np.float32)

    # Stratum corneum: hyper-reflective lamellae parallel to the surface.
    rows = _rows(z, float(s.min()), float(scj.max()))
    if rows.start < rows.stop:
        e = zz[rows] - s
        sc = f32(_SC_LEVEL) * (1 + f32(0.22) * np.cos(e * f32(2 * math.pi / _SC_LAMELLA_UM)
                                                      + scene.sc_phase[None]))  # fmt: skip
        np.copyto(out[rows], sc, where=labels[rows] == STRATUM_CORNEUM)

    # Viable epidermis and dermis, blended across the (apparent) junction.
    dej_tex = np.asarray(scene.dej_texture, dtype=np.float32)[None]
    blend = np.asarray(scene.blend_um, dtype=np.float32)
    blend_max = float(blend.max())
    living = labels >= EPIDERMIS
    epi_rows = _rows(z, float(scj.min()), float(dej_tex.max()) + blend_max)
    derm_rows = _rows(z, float(dej_tex.min()) - blend_max, math.inf)
    y, x = grid.coords()
    dej_base = geo.dej_base.astype(np.float32)[None]
    dej_mean = f32(np.mean(geo.dej_base))
    if epi_rows.start < epi_rows.stop:
        zr = zz[epi_rows]
        mesh, nucleus, bright = cell_texture(
            zr - scj, y, x, scene.cells, tuple(w[None] for w in scene.cell_warp)
        )
        epi = f32(_EPIDERMIS_LEVEL) * bright * (f32(0.55) + f32(0.75) * mesh)
        epi *= 1 - f32(0.75) * nucleus
        basal = np.asarray(scene.basal, dtype=np.float32)
        epi += (
            basal
            * np.exp(-(((dej - f32(4.0) - zr) / f32(_BASAL_UM)) ** 2))
            * (1 - f32(0.5) * nucleus)
        )
        np.copyto(out[epi_rows], epi, where=living[epi_rows])
    if derm_rows.start < derm_rows.stop:
        zr = zz[derm_rows]
        d = zr - dej_base  # depth below the local DEJ: sets the quality
        # The fibre layout follows the DEJ exactly through the papillary dermis (the
        # 70 µm scored by seed 002, so en-face slices at a depth below the local DEJ
        # are en-face textures) and relaxes to flat layers deeper, so the papillae do
        # not print their shape all the way down.
        relax = np.exp(-np.maximum(d - f32(_FOLLOW_UM), 0) * f32(1 / scene.relax_um))
        tau = d + (dej_base - dej_mean) * (1 - relax)
        values = sample_matrix(scene.matrix, tau)
        if isinstance(scene.q, tuple):
            depths, qs = scene.q
            q = np.interp(d, depths, qs).astype(np.float32)
        else:
            q = scene.q
        derm = matrix_intensity(values, scene.matrix.patch[None], q)
        derm *= f32(_DERMIS_LEVEL)
        derm *= lamellae(tau, scene.lamella_phase[None])
        w = np.clip(f32(0.5) + (zr - dej_tex) / (2 * blend), 0.0, 1.0)
        w = w * w * (3 - 2 * w)
        block = out[derm_rows]
        mixed = block + w * (derm - block)  # block holds the epidermis where it overlaps
        np.copyto(block, mixed, where=living[derm_rows])

    # Specular entrance line and round-trip attenuation through each layer.
    rows = _rows(z, float(s.min()), float(s.max()) + 6 * _ENTRANCE_UM)
    if rows.start < rows.stop and scene.entrance_level > 0:
        e = zz[rows] - s  # one-sided: the air above the surface stays dark
        line = f32(scene.entrance_level) * np.exp(-(((e - f32(1.0)) / f32(_ENTRANCE_UM)) ** 2))
        out[rows] += np.where(e >= 0, line, f32(0.0))
    mu_sc, mu_epi, mu_d = (f32(2e-3 * m) for m in scene.attenuation_per_mm)
    rows = _rows(z, float(s.min()), math.inf)
    if rows.start < rows.stop:
        zr = zz[rows]
        path = mu_sc * np.clip(zr - s, 0, scj - s)
        path += mu_epi * np.clip(zr - scj, 0, dej - scj)
        path += mu_d * np.maximum(zr - dej, 0)
        out[rows] *= np.exp(-path)
    return out, labels
