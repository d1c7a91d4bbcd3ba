"""Randomised appearance of a phantom section: what the image looks like, not the anatomy.

Domain randomisation in the spirit of SynthSeg (Billot et al., Medical Image Analysis
86:102789, 2023): the geometry and the label mask of a section stay exactly those of
:func:`skinoct.phantom.render_section`, while the intensities are redrawn far beyond
the range of real LC-OCT, so a network trained on them has to rely on the shape and
the order of the layers rather than on one device's grey levels.

An :class:`Appearance` sets, per layer (air, stratum corneum, viable epidermis,
dermis), the mean level, the texture (``'tissue'``: the simulator's cells and
fibres; ``'granular'``: correlated log-normal grain of a given size; ``'smooth'``:
flat) and its contrast; and for the whole image the specular entrance line, an
optional gel/window layer above the surface, attenuation with depth, hair and
bubble shadows, a smooth multiplicative bias field, speckle, an anisotropic PSF,
vertical stripes, horizontal line artefacts, Rician detector noise and a gamma.
Nothing of it changes a label: every artefact drawn above the skin is drawn on air
pixels only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import scipy.ndimage as ndi

from skinoct.errors import InputError
from skinoct.io import DERMIS, EPIDERMIS, STRATUM_CORNEUM
from skinoct.phantom._geometry import Geometry
from skinoct.phantom._render import Scene, shade
from skinoct.phantom._textures import _quantile_table, _table_noise, speckle, stripe_gain

__all__ = ["TEXTURES", "Appearance", "render_appearance"]

Texture = Literal["tissue", "granular", "smooth"]
#: Texture kinds of a layer.
TEXTURES = ("tissue", "granular", "smooth")
_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  #: FWHM / sigma of a Gaussian
_BIAS_UM = 250.0  #: correlation length of the multiplicative bias field


def _check(name: str, value, low: float, high: float) -> float:
    try:
        v = float(value)
        ok = math.isfinite(v) and low <= v <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return v


@dataclass(frozen=True, kw_only=True)
class Appearance:
    """How a section looks: layer levels, textures, optics, artefacts and noise.

    Levels are relative (the default dermis is ~0.5); the rendered image is positive.
    The defaults approximate the plain :func:`render_section` look.

    Parameters
    ----------
    family : str
        Name of the family it was drawn from (informative only).
    air_level, sc_level, epidermis_level, dermis_level : float
        Mean level of each layer before attenuation (0–5). ``sc_level <
        epidermis_level`` gives a dark SC; ``dermis_level < epidermis_level`` an
        inverted epidermis/dermis contrast.
    textures : tuple of str
        Texture of (SC, epidermis, dermis): ``'tissue'``, ``'granular'`` or
        ``'smooth'``.
    texture_contrast : tuple of float
        Scale of each layer's texture around its mean (0 = flat, 1 = native, ≤ 3).
    grain_um : float
        Size (FWHM of the smoothing kernel) of the granular texture's grains (0.5–20 µm).
    specular_level, specular_um : float
        Peak (0–5) and 1/e half-width (0.5–10 µm) of the bright entrance line.
    gel_um, gel_level, window_level : float
        Thickness (0–150 µm) and level (0–2) of a gel/window layer above the surface,
        and the peak of a bright line at its top (0–5). The layer is labelled air.
    attenuation_per_mm : tuple of float
        Round-trip attenuation of (SC, epidermis, dermis), 0–30 per mm.
    bias : float
        s.d. of the log of a smooth multiplicative gain field (0–1.5).
    n_hairs, n_bubbles : int
        Hairs and gel bubbles above the surface (0–10), each casting a shadow.
    shadow : float
        Fraction of the signal lost under a hair (0–1); bubbles cast half of it.
    speckle_looks : float
        Looks of the gamma speckle (0.5–1000; fewer = stronger speckle).
    read_noise : float
        s.d. of the complex Gaussian detector noise (0–0.5; Rician magnitude).
    psf_fwhm_um : tuple of float
        Anisotropic Gaussian PSF, FWHM (z, x) in µm (0–30).
    stripes : float
        Amplitude of the per-column (vertical stripe) gain (0–0.5).
    n_lines, line_level : int, float
        Horizontal line artefacts: number of bright rows (0–20) and their added level
        (0–2), e.g. reflections in the optics.
    gamma : float
        Output gamma (0.3–3) applied to the image scaled by its 99.5th percentile.
    """

    family: str = "custom"
    air_level: float = 0.012
    sc_level: float = 0.85
    epidermis_level: float = 0.4
    dermis_level: float = 0.5
    textures: tuple[str, str, str] = ("tissue", "tissue", "tissue")
    texture_contrast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    grain_um: float = 3.0
    specular_level: float = 1.8
    specular_um: float = 1.5
    gel_um: float = 0.0
    gel_level: float = 0.05
    window_level: float = 0.0
    attenuation_per_mm: tuple[float, float, float] = (2.0, 2.5, 3.0)
    bias: float = 0.0
    n_hairs: int = 0
    n_bubbles: int = 0
    shadow: float = 0.6
    speckle_looks: float = 4.0
    read_noise: float = 0.015
    psf_fwhm_um: tuple[float, float] = (0.0, 0.0)
    stripes: float = 0.03
    n_lines: int = 0
    line_level: float = 0.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        for name in ("air_level", "sc_level", "epidermis_level", "dermis_level"):
            _check(name, getattr(self, name), 0.0, 5.0)
        textures = tuple(self.textures)
        if len(textures) != 3 or any(t not in TEXTURES for t in textures):
            raise InputError(
                f"textures must be three of {', '.join(TEXTURES)} (SC, epidermis, dermis), "
                f"got {self.textures!r}"
            )
        object.__setattr__(self, "textures", textures)
        for name, n, low, high in (("texture_contrast", 3, 0.0, 3.0),
                                   ("attenuation_per_mm", 3, 0.0, 30.0),
                                   ("psf_fwhm_um", 2, 0.0, 30.0)):  # fmt: skip
            values = tuple(getattr(self, name))
            if len(values) != n:
                raise InputError(f"{name} needs {n} values, got {values!r}")
            object.__setattr__(self, name, tuple(_check(name, v, low, high) for v in values))
        for name, low, high in (
            ("grain_um", 0.5, 20.0), ("specular_level", 0.0, 5.0), ("specular_um", 0.5, 10.0),
            ("gel_um", 0.0, 150.0), ("gel_level", 0.0, 2.0), ("window_level", 0.0, 5.0),
            ("bias", 0.0, 1.5), ("shadow", 0.0, 1.0), ("speckle_looks", 0.5, 1000.0),
            ("read_noise", 0.0, 0.5), ("stripes", 0.0, 0.5), ("line_level", 0.0, 2.0),
            ("gamma", 0.3, 3.0),
        ):  # fmt: skip
            _check(name, getattr(self, name), low, high)
        for name in ("n_hairs", "n_bubbles", "n_lines"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"{name} must be an integer, got {value!r}")
            _check(name, value, 0, 20 if name == "n_lines" else 10)

    def as_dict(self) -> dict[str, object]:
        """Flat ``{name: value}`` (tuples as space-separated text) for CSV/JSON."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                value = " ".join(v if isinstance(v, str) else f"{v:g}" for v in value)
            out[key] = value
        return out


def render_appearance(
    z_um: np.ndarray,
    scene: Scene,
    spacing_um: tuple[float, float],
    look: Appearance,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Image and labels of a section scene under ``look`` (labels as :func:`shade`)."""
    geo = scene.geometry
    base = replace(scene, attenuation_per_mm=(0.0, 0.0, 0.0), entrance_level=0.0)
    signal, labels = shade(z_um, base)
    z = np.asarray(z_um, dtype=np.float32)[:, None]
    dz, dx = spacing_um
    img = _layer_intensities(signal, labels, look, rng, (dz, dx))
    img = _above_surface(img, labels, z, geo, look, rng, dx)
    img *= _attenuation(z, geo, look.attenuation_per_mm)
    img = _shadows(img, labels, z, geo, look, rng, dx)
    if look.bias > 0:
        img *= _smooth_field(rng, img.shape, (_BIAS_UM / dz, _BIAS_UM / dx), look.bias, log=True)
    return _detect(img, look, rng, (dz, dx)), labels


def _smooth_field(rng, shape, sigma_px, scale: float, *, log: bool) -> np.ndarray:
    """Unit-s.d. Gaussian random field (Gaussian-filtered white noise) times ``scale``;
    ``log=True`` returns the unit-mean log-normal ``exp(scale·g − scale²/2)``."""
    # Smooth fields are drawn on a grid ~sigma/3 coarser and interpolated (cheap).
    step = max(1, int(min(sigma_px) / 3))
    small = tuple(math.ceil(n / step) + 1 for n in shape)
    g = rng.standard_normal(small).astype(np.float32)
    g = ndi.gaussian_filter(g, tuple(s / step for s in sigma_px), mode="wrap")
    if step > 1:
        g = ndi.zoom(g, step, order=1, mode="nearest", grid_mode=False)
    g = np.ascontiguousarray(g[: shape[0], : shape[1]])
    g -= np.float32(g.mean())
    g /= max(float(g.std()), 1e-12)
    if log:
        return np.exp(np.float32(scale) * g - np.float32(scale * scale / 2))
    return np.float32(scale) * g


def _layer_intensities(signal, labels, look: Appearance, rng, spacing) -> np.ndarray:
    """Per-layer level × texture; air at ``air_level``."""
    out = np.full(signal.shape, np.float32(look.air_level), dtype=np.float32)
    levels = (look.sc_level, look.epidermis_level, look.dermis_level)
    grain = None
    for k, label in enumerate((STRATUM_CORNEUM, EPIDERMIS, DERMIS)):
        mask = labels == label
        if not mask.any():
            continue
        kind, contrast = look.textures[k], look.texture_contrast[k]
        if kind == "tissue":
            t = signal / max(float(signal[mask].mean()), 1e-6)
        elif kind == "granular":
            if grain is None:  # one grain field per section, shared by the layers
                # grain_um is the FWHM of a grain: σ = grain / 2.355
                sigma = tuple(look.grain_um / _FWHM / d for d in spacing)
                grain = _smooth_field(rng, signal.shape, sigma, 0.8, log=True)
            t = grain
        else:
            t = np.ones_like(signal)
        layer = np.float32(levels[k]) * np.maximum(1 + np.float32(contrast) * (t - 1), 0.02)
        np.copyto(out, layer, where=mask)
    return out


def _above_surface(img, labels, z, geo: Geometry, look: Appearance, rng, dx) -> np.ndarray:
    """Gel/window layer, its top reflection and the specular entrance line."""
    f32 = np.float32
    s = geo.surface.astype(np.float32)[None]
    air = labels == 0
    if look.gel_um > 0:
        top = s - f32(look.gel_um)
        gel = (z >= top) & air
        img[gel] = f32(look.gel_level)
        if look.window_level > 0:
            img += np.where(air, f32(look.window_level) * np.exp(-np.square((z - top) / 1.5)), 0)
    if look.specular_level > 0:
        e = z - s
        line = f32(look.specular_level) * np.exp(-np.square((e - 1) / f32(look.specular_um)))
        img += np.where(e >= 0, line, f32(0.0))
    return img


def _attenuation(z, geo: Geometry, mu_per_mm) -> np.ndarray:
    """Round-trip Beer–Lambert factor ``exp(−2 Σ μ_layer · path_layer)``."""
    s, scj, dej = (a.astype(np.float32)[None] for a in (geo.surface, geo.sc_junction, geo.dej))
    mu_sc, mu_epi, mu_d = (np.float32(2e-3 * m) for m in mu_per_mm)
    path = mu_sc * np.clip(z - s, 0, scj - s)
    path += mu_epi * np.clip(z - scj, 0, dej - scj)
    path += mu_d * np.maximum(z - dej, 0)
    return np.exp(-path)


def _shadows(img, labels, z, geo: Geometry, look: Appearance, rng, dx) -> np.ndarray:
    """Draw hairs and bubbles above the surface and the shadows they cast below them.

    A hair (50–120 µm across) or a bubble (20–80 µm) is drawn on air pixels only, as
    a bright rim (cuticle / bubble wall) around a dimmer core; the columns under it
    lose ``shadow`` (hair) or ``shadow / 2`` (bubble) of their signal from its
    centre down, with soft lateral edges.
    """
    nx = img.shape[1]
    x = np.arange(nx, dtype=np.float32) * np.float32(dx)
    width = nx * dx
    kinds = ["hair"] * look.n_hairs + ["bubble"] * look.n_bubbles
    for kind in kinds:
        hair = kind == "hair"
        radius = rng.uniform(25.0, 60.0) if hair else rng.uniform(10.0, 40.0)
        x0 = rng.uniform(0.0, width)
        brightness = rng.uniform(0.3, 1.5)
        col = int(min(nx - 1, max(0, round(x0 / dx))))
        zc = float(geo.surface[col]) - rng.uniform(0.3, 1.5) * radius
        r = np.sqrt(np.square(x[None] - x0) + np.square(z - zc)) / np.float32(radius)
        inside = (r < 1) & (labels == 0)
        rim = np.exp(-np.square((r - 0.9) / 0.1))
        core = 0.3 if hair else 0.05
        np.copyto(img, (np.float32(brightness) * (core + rim)).astype(np.float32), where=inside)
        depth = look.shadow if hair else look.shadow / 2
        lateral = np.clip(1.2 - np.abs(x - x0) / radius, 0.0, 1.0)  # soft-edged band
        below = np.clip((z - zc) / radius, 0.0, 1.0)
        loss = (np.float32(depth) * lateral[None] * below).astype(np.float32)
        img *= np.where(inside, np.float32(1.0), 1 - loss)
    return img


def _detect(img, look: Appearance, rng, spacing) -> np.ndarray:
    """Speckle, PSF, stripes, Rician noise, horizontal lines and gamma."""
    img *= speckle(rng, img.shape, look.speckle_looks)
    sigma = tuple(f / _FWHM / d for f, d in zip(look.psf_fwhm_um, spacing, strict=True))
    if any(s > 0 for s in sigma):
        img = ndi.gaussian_filter(img, sigma, mode="nearest")
    img *= stripe_gain(rng, img.shape[1], look.stripes)[None]
    np.maximum(img, 0, out=img)
    if look.read_noise > 0:
        normal = _quantile_table(None)
        re = _table_noise(rng, img.shape, normal) * np.float32(look.read_noise)
        im = _table_noise(rng, img.shape, normal) * np.float32(look.read_noise)
        img = np.hypot(img + re, im)
    for _ in range(look.n_lines):
        row = int(rng.integers(0, img.shape[0]))
        thick = max(1, round(rng.uniform(0.5, 3.0) / spacing[0]))
        img[row : row + thick] += np.float32(look.line_level * rng.uniform(0.5, 1.0))
    if look.gamma != 1.0:
        top = max(float(np.percentile(img, 99.5)), 1e-6)
        img = np.float32(top) * np.power(img / np.float32(top), np.float32(look.gamma))
    img = img.astype(np.float32, copy=False)
    img += np.float32(1e-6)
    return img
