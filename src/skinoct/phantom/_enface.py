"""En-face dermal-matrix stacks with a ground-truth quality grade."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from skinoct.errors import InputError
from skinoct.phantom._fields import LateralGrid
from skinoct.phantom._params import EnfaceParams
from skinoct.phantom._section import _rng
from skinoct.phantom._textures import (
    KNOT_UM,
    detect,
    lamella_phase_field,
    lamellae,
    matrix_fields,
    matrix_intensity,
    sample_matrix,
    stripe_gain,
)

__all__ = ["PhantomEnface", "grade_of", "render_enface"]

#: Axial offsets of the three slices of a stack (seed 002 §2.2.3: z − 1, z, z + 1 µm).
SLICE_OFFSETS_UM = (-1.0, 0.0, 1.0)
_DERMIS_LEVEL = 1.0  # the overall level is set by EnfaceParams.brightness


@dataclass(frozen=True)
class PhantomEnface:
    """An en-face stack of the dermal matrix and its quality.

    Attributes
    ----------
    stack : ndarray
        float32 ``(3, H, W)``: slices at z − 1, z, z + 1 µm (seed 002 uses them as
        R, G, B); neighbouring slices share most of their fibres.
    q : float
        Continuous matrix quality in [1, 4].
    grade : int
        Ground-truth grade ``clip(round(q), 1, 4)`` (halves round up).
    spacing_um : tuple of float
        ``(dy, dx)``.
    """

    stack: np.ndarray = field(repr=False)
    q: float
    grade: int
    spacing_um: tuple[float, float]


def grade_of(q) -> np.ndarray | int:
    """Grade 1–4 of a quality ``q``: ``clip(floor(q + 0.5), 1, 4)`` (halves round up)."""
    g = np.clip(np.floor(np.asarray(q, dtype=float) + 0.5), 1, 4).astype(int)
    return int(g) if g.ndim == 0 else g


def render_enface(
    q: float, params: EnfaceParams | None = None, *, seed: int | np.random.Generator = 0
) -> PhantomEnface:
    """Render three adjacent en-face slices of dermis with matrix quality ``q``.

    Quality 1 gives coarse, fragmented fibres in a sponge-like network; 2 small
    fibres spread unevenly; 3 a partially reticulated network; 4 a web of long,
    thin, reticulated fibres (seed 002, Fig. 1). The texture is the dermis model of
    :func:`render_section` and :func:`render_volume` at constant depth.

    Parameters
    ----------
    q : float
        Continuous quality in [1, 4].
    params : EnfaceParams, optional
        Field size, spacing, noise; default 400 × 400 µm at 1 µm.
    seed : int or numpy.random.Generator

    Returns
    -------
    PhantomEnface

    Raises
    ------
    InputError
        If ``q`` is outside [1, 4], ``params`` is not an :class:`EnfaceParams` or the
        seed is invalid.

    Examples
    --------
    >>> from skinoct.phantom import render_enface
    >>> tile = render_enface(3.4, seed=0)
    >>> tile.stack.shape, tile.grade
    ((3, 400, 400), 3)
    """
    try:
        qf = float(q)
    except (TypeError, ValueError):
        raise InputError(f"q must be a number in [1, 4], got {q!r}") from None
    if not (math.isfinite(qf) and 1.0 <= qf <= 4.0):
        raise InputError(f"q must be a number in [1, 4], got {q!r}")
    if params is None:
        params = EnfaceParams()
    if not isinstance(params, EnfaceParams):
        raise InputError(f"params must be an EnfaceParams, got {type(params).__name__}")
    rng = _rng(seed)
    grid = LateralGrid(params.shape, params.spacing_um)
    # A depth whose three slices fall between two texture knots (at 0 and KNOT_UM).
    depth = float(rng.uniform(1.0, KNOT_UM - 1.0))
    fields = matrix_fields(grid, rng, depth - 1.0, depth + 1.0, angle_deg=params.angle_deg, d0=0.0)
    d = np.array([depth + off for off in SLICE_OFFSETS_UM], dtype=np.float32)[:, None, None]
    values = sample_matrix(fields, d)
    signal = matrix_intensity(values, fields.patch[None], qf)
    signal *= lamellae(d, lamella_phase_field(grid, rng)[None])
    signal *= np.float32(_DERMIS_LEVEL * params.brightness)
    gain = stripe_gain(rng, grid.shape[-1], params.stripes)
    blur = None
    if params.blur_um > 0:
        sigma = params.blur_um / (2 * math.sqrt(2 * math.log(2)))
        blur = (0.0, sigma / params.spacing_um[0], sigma / params.spacing_um[1])
    stack = detect(signal, rng, noise=params.noise, gain=gain[None, None, :], blur_sigma_px=blur)
    return PhantomEnface(stack=stack, q=qf, grade=grade_of(qf), spacing_um=params.spacing_um)
