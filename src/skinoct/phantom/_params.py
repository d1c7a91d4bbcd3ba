"""Parameter records of the simulator, with their documented ranges and sources.

Values and where they come from
-------------------------------
- Sampling: LC-OCT has a ~1 µm isotropic resolution and a 1.2 mm wide × 0.5 mm deep
  vertical field; 3-D stacks are 1.2 × 0.5 × 0.3–0.5 mm (Dubois et al. 2018,
  J Biomed Opt 23:106007; Ogien et al. 2020, Front Optoelectron 13:381; seed 002 §2.1:
  1224 × 500 µm en-face fields down to 300 µm).
- Stratum corneum (SC) and viable-epidermis thickness by body site, rounded to the
  middle of the ranges measured in vivo: LC-OCT of healthy skin at several sites
  (Monnier et al. 2020, JEADV 34:2914), RCM (Robertson & Rees 2010, Acta Derm
  Venereol 90:368) and OCT (Sandby-Møller et al. 2003, Acta Derm Venereol 83:410);
  face SC ≈ 10–20 µm, palm SC ≥ 100 µm, viable epidermis ≈ 40–100 µm.
- DEJ undulation: dermal papillae ≈ 100 per mm² on the face, i.e. a spacing of about
  100 µm, fewer and flatter with age (Sauermann et al. 2002, Skin Res Technol 8:52;
  Neerken et al. 2004, J Biomed Opt 9:274).
- Attenuation: total attenuation of skin at the ~800 nm LC-OCT wavelength is a few
  per mm (Bashkatov et al. 2005, J Phys D 38:2543); the defaults are set within that
  range so the dermal signal fades over the ~0.5 mm LC-OCT penetration depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

from skinoct.errors import InputError
from skinoct.io import check_spacing

__all__ = ["SITES", "EnfaceParams", "SectionParams", "SiteDefaults", "VolumeParams"]

Site = Literal["face", "forearm", "back", "palm"]


@dataclass(frozen=True)
class SiteDefaults:
    """Typical thicknesses (µm) of one body site (see the module docstring)."""

    sc_thickness_um: float
    epidermis_thickness_um: float


#: Site defaults: rounded middles of published in-vivo ranges (module docstring).
SITES: dict[str, SiteDefaults] = {
    "face": SiteDefaults(sc_thickness_um=14.0, epidermis_thickness_um=55.0),
    "forearm": SiteDefaults(sc_thickness_um=18.0, epidermis_thickness_um=65.0),
    "back": SiteDefaults(sc_thickness_um=16.0, epidermis_thickness_um=75.0),
    "palm": SiteDefaults(sc_thickness_um=120.0, epidermis_thickness_um=110.0),
}


def _check_range(name: str, value, low: float, high: float) -> None:
    try:
        ok = math.isfinite(float(value)) and low <= float(value) <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class _SkinParams:
    """Skin model shared by sections and volumes (fields documented on subclasses)."""

    site: Site = "face"
    sc_thickness_um: float | None = None
    epidermis_thickness_um: float | None = None
    surface_depth_um: float = 60.0
    tilt_deg: float = 0.0
    curvature: float = 0.0
    roughness_um: float = 1.5
    dej_amplitude_um: float = 10.0
    dej_wavelength_um: float = 100.0
    dej_irregularity: float = 0.3
    n_protrusions: int = 0
    pigmentation: float = 0.5
    noise: float = 1.0
    stripes: float = 0.03
    attenuation_per_mm: tuple[float, float, float] = (2.0, 2.5, 3.0)

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise InputError(f"site must be one of {', '.join(SITES)}, got {self.site!r}")
        for name in ("sc_thickness_um", "epidermis_thickness_um"):
            value = getattr(self, name)
            if value is not None:
                _check_range(name, value, 1.0, 400.0)
        _check_range("surface_depth_um", self.surface_depth_um, -1000.0, 1000.0)
        _check_range("tilt_deg", self.tilt_deg, -30.0, 30.0)
        _check_range("curvature", self.curvature, -2.0, 2.0)
        _check_range("roughness_um", self.roughness_um, 0.0, 20.0)
        _check_range("dej_amplitude_um", self.dej_amplitude_um, 0.0, 60.0)
        _check_range("dej_wavelength_um", self.dej_wavelength_um, 20.0, 500.0)
        _check_range("dej_irregularity", self.dej_irregularity, 0.0, 1.0)
        if not isinstance(self.n_protrusions, (int, np.integer)) or isinstance(
            self.n_protrusions, bool
        ):
            raise InputError(f"n_protrusions must be an integer, got {self.n_protrusions!r}")
        _check_range("n_protrusions", self.n_protrusions, 0, 50)
        _check_range("pigmentation", self.pigmentation, 0.0, 1.0)
        _check_range("noise", self.noise, 0.0, 5.0)
        _check_range("stripes", self.stripes, 0.0, 0.5)
        att = tuple(self.attenuation_per_mm)
        if len(att) != 3:
            raise InputError(
                f"attenuation_per_mm needs 3 values (SC, epidermis, dermis), got {att!r}"
            )
        for value in att:
            _check_range("attenuation_per_mm", value, 0.0, 50.0)

    @property
    def sc_um(self) -> float:
        """SC thickness in µm (the site default when ``sc_thickness_um`` is None)."""
        if self.sc_thickness_um is None:
            return SITES[self.site].sc_thickness_um
        return float(self.sc_thickness_um)

    @property
    def epidermis_um(self) -> float:
        """Viable-epidermis thickness in µm (site default when None)."""
        if self.epidermis_thickness_um is None:
            return SITES[self.site].epidermis_thickness_um
        return float(self.epidermis_thickness_um)

    def as_dict(self) -> dict[str, object]:
        """Flat ``{name: value}`` of every field (for CSV/JSON ground truth)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if callable(value):
                value = getattr(value, "__name__", "callable")
            elif isinstance(value, np.ndarray):
                value = "array"
            elif isinstance(value, tuple):
                value = " ".join(f"{v:g}" for v in value)
            out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class SectionParams(_SkinParams):
    """Parameters of a vertical LC-OCT section (:func:`render_section`).

    All fields are keyword-only; defaults give face skin imaged with the standard
    1.2 mm × 0.5 mm LC-OCT field at 1 µm (512 × 1200 px). Sources of the values are
    in the module docstring of :mod:`skinoct.phantom._params`.

    Parameters
    ----------
    width_um, depth_um : float
        Field of view in µm (lateral 10–5000, depth 10–2000). Defaults 1200, 512.
    spacing_um : tuple of float
        ``(dz, dx)`` pixel size in µm (0.1–10). Row ``i`` samples depth ``i·dz``.
    site : {'face', 'forearm', 'back', 'palm'}
        Body site: sets the SC and epidermis thickness when those are None.
    sc_thickness_um : float, optional
        Mean stratum-corneum thickness (1–400 µm), measured perpendicular to the
        surface. Site default: face 14, forearm 18, back 16, palm 120.
    epidermis_thickness_um : float, optional
        Mean viable-epidermis thickness, SC junction to DEJ baseline (1–400 µm),
        excluding protrusions. Site default: face 55, forearm 65, back 75, palm 110.
    surface_depth_um : float
        Depth of the skin surface at the centre of the field (default 60).
    tilt_deg : float
        Tilt of the skin in the x–z plane, −30…30°; positive goes deeper to the right.
    curvature : float
        Surface curvature in 1/mm (−2…2); positive is a dome (shallower in the centre).
    roughness_um : float
        RMS of the surface micro-relief (0–20 µm, default 1.5).
    dej_amplitude_um : float
        DEJ undulation amplitude, √2 × its RMS (0–60 µm, default 10).
    dej_wavelength_um : float
        Spacing of the dermal papillae (20–500 µm, default 100 ≈ 100 papillae/mm²).
    dej_irregularity : float
        0 (regular papillae) … 1 (broad-band, irregular); widens the spectral ring.
    n_protrusions : int
        Number of individual rete-ridge protrusions, 15–35 µm deep (0–50).
    pigmentation : float
        0…1: brightness of the melanin-loaded basal layer above the DEJ.
    noise : float
        Scales speckle contrast and additive detector noise (0 = none, 0–5).
    stripes : float
        Relative amplitude of the vertical line-camera stripes (0–0.5, default 0.03).
    attenuation_per_mm : tuple of float
        Attenuation coefficients (SC, epidermis, dermis) in 1/mm, applied on the
        round trip (default 2.0, 2.5, 3.0).
    blur_um : float
        FWHM of an optional out-of-focus Gaussian blur (0–20 µm).
    disruption : tuple of float, optional
        ``(x_start_um, x_end_um)``: the DEJ is blurred and interrupted there (no
        basal layer, epidermis and dermis textures mixed over ~±20 µm). The labels
        still follow the DEJ curve.
    matrix_q : float
        Dermal-matrix quality (1–4) of the dermis texture (see :func:`render_enface`).
    """

    width_um: float = 1200.0
    depth_um: float = 512.0
    spacing_um: tuple[float, float] = (1.0, 1.0)
    blur_um: float = 0.0
    disruption: tuple[float, float] | None = None
    matrix_q: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("width_um", self.width_um, 10.0, 5000.0)
        _check_range("depth_um", self.depth_um, 10.0, 2000.0)
        spacing = check_spacing(self.spacing_um, 2)
        for value in spacing:
            _check_range("spacing_um", value, 0.1, 10.0)
        object.__setattr__(self, "spacing_um", spacing)
        _check_range("blur_um", self.blur_um, 0.0, 20.0)
        _check_range("matrix_q", self.matrix_q, 1.0, 4.0)
        if self.disruption is not None:
            try:
                start, end = (float(v) for v in self.disruption)
            except (TypeError, ValueError):
                raise InputError(
                    f"disruption must be (x_start_um, x_end_um), got {self.disruption!r}"
                ) from None
            if not (0.0 <= start < end <= self.width_um):
                raise InputError(
                    f"disruption must satisfy 0 <= x_start_um < x_end_um <= width_um "
                    f"({self.width_um:g}), got {self.disruption!r}"
                )
            object.__setattr__(self, "disruption", (start, end))

    @property
    def shape(self) -> tuple[int, int]:
        """``(nz, nx)`` of the rendered image."""
        dz, dx = self.spacing_um
        return max(2, round(self.depth_um / dz)), max(2, round(self.width_um / dx))


@dataclass(frozen=True, kw_only=True)
class EnfaceParams:
    """Parameters of an en-face dermal-matrix stack (:func:`render_enface`).

    Parameters
    ----------
    size_um : float
        Side of the square field in µm (16–2000; default 400, the tile size of
        seed 002).
    spacing_um : tuple of float
        ``(dy, dx)`` in µm (0.1–10).
    noise : float
        Scales speckle and additive noise (0–5).
    stripes : float
        Relative amplitude of the line-camera stripes (0–0.5).
    brightness : float
        Mean signal level, standing in for the attenuation at depth (0.05–10).
    blur_um : float
        FWHM of an optional Gaussian blur (0–20 µm).
    angle_deg : float, optional
        Mean fibre orientation; None draws it at random.
    """

    size_um: float = 400.0
    spacing_um: tuple[float, float] = (1.0, 1.0)
    noise: float = 1.0
    stripes: float = 0.03
    brightness: float = 0.5
    blur_um: float = 0.0
    angle_deg: float | None = None

    def __post_init__(self) -> None:
        _check_range("size_um", self.size_um, 16.0, 2000.0)
        spacing = check_spacing(self.spacing_um, 2)
        for value in spacing:
            _check_range("spacing_um", value, 0.1, 10.0)
        object.__setattr__(self, "spacing_um", spacing)
        _check_range("noise", self.noise, 0.0, 5.0)
        _check_range("stripes", self.stripes, 0.0, 0.5)
        _check_range("brightness", self.brightness, 0.05, 10.0)
        _check_range("blur_um", self.blur_um, 0.0, 20.0)
        if self.angle_deg is not None:
            _check_range("angle_deg", self.angle_deg, -360.0, 360.0)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        dy, dx = self.spacing_um
        return max(8, round(self.size_um / dy)), max(8, round(self.size_um / dx))


QProfile = Callable[[np.ndarray], np.ndarray] | np.ndarray | None


@dataclass(frozen=True, kw_only=True)
class VolumeParams(_SkinParams):
    """Parameters of a 3-D LC-OCT volume (:func:`render_volume`).

    Takes every skin field of :class:`SectionParams` (site, thicknesses, surface,
    DEJ, pigmentation, noise, stripes, attenuation) plus:

    Parameters
    ----------
    size_um : tuple of float
        ``(depth, y, x)`` extent in µm; default ``(300, 500, 1200)``, the LC-OCT 3-D
        field (seed 002 §2.1). Depth 10–2000, lateral 10–5000.
    spacing_um : tuple of float
        ``(dz, dy, dx)`` in µm (0.1–10).
    tilt_y_deg : float
        Tilt along y (−30…30°); ``tilt_deg`` is the tilt along x.
    q_profile : callable or array, optional
        Dermal-matrix quality as a function of depth below the local DEJ: a callable
        ``q(depths_um) -> array`` or an array sampled every 1 µm from 0 µm (held at
        its last value deeper). Values are clipped to [1, 4]. None: 3.2 at the DEJ
        falling linearly by 0.01 per µm.
    """

    size_um: tuple[float, float, float] = (300.0, 500.0, 1200.0)
    spacing_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    tilt_y_deg: float = 0.0
    q_profile: QProfile = None

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            size = tuple(float(v) for v in self.size_um)
        except (TypeError, ValueError):
            raise InputError(f"size_um must be 3 numbers (z, y, x), got {self.size_um!r}") from None
        if len(size) != 3:
            raise InputError(f"size_um must be 3 numbers (z, y, x), got {self.size_um!r}")
        _check_range("size_um (z)", size[0], 10.0, 2000.0)
        _check_range("size_um (y)", size[1], 10.0, 5000.0)
        _check_range("size_um (x)", size[2], 10.0, 5000.0)
        object.__setattr__(self, "size_um", size)
        spacing = check_spacing(self.spacing_um, 3)
        for value in spacing:
            _check_range("spacing_um", value, 0.1, 10.0)
        object.__setattr__(self, "spacing_um", spacing)
        _check_range("tilt_y_deg", self.tilt_y_deg, -30.0, 30.0)
        q = self.q_profile
        if q is not None and not callable(q):
            arr = np.asarray(q, dtype=float)
            if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)):
                raise InputError(
                    "q_profile must be a callable or a 1-D array of finite values "
                    f"(q every 1 µm below the DEJ), got shape {arr.shape}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nz, ny, nx)``."""
        return tuple(
            max(2, round(s / d)) for s, d in zip(self.size_um, self.spacing_um, strict=True)
        )
