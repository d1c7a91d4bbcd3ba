"""Named appearance families of phantom sections (domain randomisation).

A family is a distribution over :class:`Appearance` and over the imaging geometry
(pixel size, tilt, curvature, thickness spread) of a section. The families differ
on purpose far beyond the range of real LC-OCT (SynthSeg: Billot et al., Medical
Image Analysis 86:102789, 2023), so that a model trained on some of them and tested
on another measures generalisation to an unseen look (leave-one-family-out,
``scripts/layers_families.py``):

``standard``
    The LC-OCT look of :func:`render_section` with moderate jitter: bright SC and
    entrance line, cellular epidermis, fibrous dermis, ~1 µm pixels.
``dark-sc-low-contrast``
    SC darker than the epidermis, weak entrance line, low epidermis/dermis contrast
    (inverted in a third of the sections), granular textures, strong speckle,
    0.5–1.5 µm pixels.
``smooth-blurred-coarse``
    Flat or faint textures, a wide anisotropic PSF (FWHM up to 8 µm axially, 14 µm
    laterally), strong attenuation, 2–5 µm pixels, a gel layer in half the sections.
``artefact-heavy``
    Vertical stripes, horizontal line artefacts, hair and bubble shadows, a
    gel/window layer with a bright top, a strong bias field, heavy noise and an
    extreme gamma, 0.5–2.5 µm pixels, steeper tilts.

``mixed`` draws one of the four families per section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skinoct.errors import InputError
from skinoct.phantom._appearance import TEXTURES, Appearance

__all__ = ["FAMILIES", "Family", "check_family", "sample_appearance"]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    """A uniform draw rounded to 4 decimals (readable, round-trips through CSV)."""
    return round(float(rng.uniform(low, high)), 4)


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 4)


@dataclass(frozen=True)
class Family:
    """An appearance family: a sampler of looks and the geometry ranges it implies.

    Attributes
    ----------
    name : str
    summary : str
        One line for docs and ``--help``.
    spacing_um : ((float, float), (float, float))
        Ranges of the pixel size ``(dz, dx)`` in µm, drawn independently.
    max_tilt_deg, max_curvature : float
        Tilt (±°) and curvature (±1/mm) ranges of its sections.
    thickness_scale : (float, float)
        Range of the factor applied to the site's SC and epidermis thickness.
    sample : callable
        ``sample(rng) -> Appearance``.
    """

    name: str
    summary: str
    spacing_um: tuple[tuple[float, float], tuple[float, float]]
    max_tilt_deg: float
    max_curvature: float
    thickness_scale: tuple[float, float]
    sample: Callable[[np.random.Generator], Appearance]


def _standard(rng) -> Appearance:
    return Appearance(
        family="standard",
        air_level=_u(rng, 0.005, 0.03), sc_level=_u(rng, 0.6, 1.2),
        epidermis_level=_u(rng, 0.3, 0.5), dermis_level=_u(rng, 0.45, 0.8),
        textures=("tissue", "tissue", "tissue"),
        texture_contrast=(_u(rng, 0.7, 1.2), _u(rng, 0.7, 1.2), _u(rng, 0.7, 1.2)),
        specular_level=_u(rng, 1.0, 2.5), specular_um=_u(rng, 1.0, 2.5),
        attenuation_per_mm=(_u(rng, 1.4, 2.8), _u(rng, 1.7, 3.5), _u(rng, 2.1, 4.2)),
        speckle_looks=_u(rng, 2.0, 8.0), read_noise=_u(rng, 0.005, 0.03),
        psf_fwhm_um=(_u(rng, 0.0, 2.5), _u(rng, 0.0, 3.0)), stripes=_u(rng, 0.0, 0.08),
        gamma=_u(rng, 0.8, 1.25),
    )  # fmt: skip


def _dark_sc(rng) -> Appearance:
    epi = _u(rng, 0.35, 0.7)
    inverted = rng.random() < 1 / 3
    ratio = _u(rng, 0.55, 0.85) if inverted else _u(rng, 0.85, 1.25)
    return Appearance(
        family="dark-sc-low-contrast",
        air_level=_u(rng, 0.0, 0.05), sc_level=round(epi * _u(rng, 0.2, 0.7), 4),
        epidermis_level=epi, dermis_level=round(epi * ratio, 4),
        textures=(str(rng.choice(TEXTURES)), str(rng.choice(("granular", "tissue"))),
                  "granular"),
        texture_contrast=(_u(rng, 0.2, 1.0), _u(rng, 0.4, 1.5), _u(rng, 0.4, 1.5)),
        grain_um=_u(rng, 1.0, 6.0),
        specular_level=_u(rng, 0.0, 0.6), specular_um=_u(rng, 0.8, 3.0),
        attenuation_per_mm=(_u(rng, 0.5, 3.0), _u(rng, 0.5, 3.0), _u(rng, 0.5, 4.0)),
        speckle_looks=_u(rng, 1.0, 4.0), read_noise=_u(rng, 0.01, 0.05),
        psf_fwhm_um=(_u(rng, 0.0, 3.0), _u(rng, 0.0, 3.0)), stripes=_u(rng, 0.0, 0.1),
        gamma=_u(rng, 0.7, 1.5),
    )  # fmt: skip


def _smooth_blurred(rng) -> Appearance:
    levels = np.sort(rng.uniform(0.15, 1.0, 3))
    order = rng.permutation(3)  # any order of the layer levels
    gel = rng.random() < 0.5
    return Appearance(
        family="smooth-blurred-coarse",
        air_level=_u(rng, 0.0, 0.08),
        sc_level=round(float(levels[order[0]]), 4),
        epidermis_level=round(float(levels[order[1]]), 4),
        dermis_level=round(float(levels[order[2]]), 4),
        textures=tuple(str(rng.choice(("smooth", "granular"))) for _ in range(3)),
        texture_contrast=(_u(rng, 0.0, 0.4), _u(rng, 0.0, 0.4), _u(rng, 0.0, 0.4)),
        grain_um=_u(rng, 6.0, 20.0),
        specular_level=_u(rng, 0.0, 2.0), specular_um=_u(rng, 2.0, 8.0),
        gel_um=_u(rng, 10.0, 50.0) if gel else 0.0, gel_level=_u(rng, 0.02, 0.3),
        attenuation_per_mm=(_u(rng, 2.0, 10.0), _u(rng, 3.0, 12.0), _u(rng, 4.0, 15.0)),
        bias=_u(rng, 0.0, 0.4),
        speckle_looks=_u(rng, 8.0, 100.0), read_noise=_u(rng, 0.0, 0.02),
        psf_fwhm_um=(_u(rng, 3.0, 8.0), _u(rng, 4.0, 14.0)), stripes=_u(rng, 0.0, 0.05),
        gamma=_u(rng, 0.6, 1.6),
    )  # fmt: skip


def _artefact_heavy(rng) -> Appearance:
    return Appearance(
        family="artefact-heavy",
        air_level=_u(rng, 0.0, 0.1), sc_level=_u(rng, 0.3, 1.5),
        epidermis_level=_u(rng, 0.2, 0.8), dermis_level=_u(rng, 0.2, 1.0),
        textures=tuple(str(rng.choice(TEXTURES)) for _ in range(3)),
        texture_contrast=(_u(rng, 0.3, 1.5), _u(rng, 0.3, 1.5), _u(rng, 0.3, 1.5)),
        grain_um=_u(rng, 1.0, 8.0),
        specular_level=_u(rng, 0.5, 4.0), specular_um=_u(rng, 0.8, 3.0),
        gel_um=_u(rng, 15.0, 60.0), gel_level=_u(rng, 0.02, 0.5),
        window_level=_u(rng, 0.5, 3.0),
        attenuation_per_mm=(_u(rng, 0.5, 6.0), _u(rng, 0.5, 6.0), _u(rng, 0.5, 8.0)),
        bias=_u(rng, 0.3, 0.9), n_hairs=int(rng.integers(0, 3)),
        n_bubbles=int(rng.integers(0, 4)), shadow=_u(rng, 0.4, 0.9),
        speckle_looks=_u(rng, 1.0, 3.0), read_noise=_u(rng, 0.02, 0.1),
        psf_fwhm_um=(_u(rng, 0.0, 4.0), _u(rng, 0.0, 6.0)), stripes=_u(rng, 0.08, 0.3),
        n_lines=int(rng.integers(1, 8)), line_level=_u(rng, 0.1, 1.0),
        gamma=_loguniform(rng, 0.45, 2.2),
    )  # fmt: skip


#: The named families (module docstring), in a fixed order.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("standard", "LC-OCT look with moderate jitter, ~1 µm pixels",
               ((0.8, 1.25), (0.8, 1.5)), 12.0, 1.0, (0.75, 1.3), _standard),
        Family("dark-sc-low-contrast",
               "SC darker than the epidermis, low or inverted epidermis/dermis contrast",
               ((0.5, 1.5), (0.5, 1.5)), 15.0, 1.5, (0.6, 1.5), _dark_sc),
        Family("smooth-blurred-coarse", "flat textures, wide anisotropic PSF, 2–5 µm pixels",
               ((2.0, 5.0), (2.0, 5.0)), 15.0, 1.2, (0.6, 1.5), _smooth_blurred),
        Family("artefact-heavy",
               "stripes, lines, hair/bubble shadows, gel window, bias field, heavy noise",
               ((0.5, 2.5), (0.5, 2.5)), 20.0, 1.2, (0.6, 1.5), _artefact_heavy),
    )
}  # fmt: skip
#: Name drawing one of the :data:`FAMILIES` per section.
MIXED = "mixed"


def check_family(name: str) -> str:
    """Return ``name`` if it is a family or ``'mixed'``; else raise InputError."""
    if name != MIXED and name not in FAMILIES:
        raise InputError(
            f"family must be one of {', '.join((*FAMILIES, MIXED))}, got {name!r}"
        )
    return name


def pick_family(rng: np.random.Generator, family: str) -> Family:
    """The :class:`Family` of ``family``, drawing one uniformly for ``'mixed'``."""
    check_family(family)
    if family == MIXED:
        family = str(rng.choice(list(FAMILIES)))
    return FAMILIES[family]


def sample_appearance(rng: np.random.Generator, *, family: str = "standard") -> Appearance:
    """Draw an :class:`Appearance` from a named family (or ``'mixed'``).

    Parameters
    ----------
    rng : numpy.random.Generator
    family : str
        One of :data:`FAMILIES` or ``'mixed'``.

    Returns
    -------
    Appearance

    Raises
    ------
    InputError
        For an unknown family.

    Examples
    --------
    >>> import numpy as np
    >>> look = sample_appearance(np.random.default_rng(0), family="dark-sc-low-contrast")
    >>> look.sc_level < look.epidermis_level
    True
    """
    return pick_family(rng, family).sample(rng)
