"""Morphometry of a vertical section (:func:`measure_section`) and the metric records of both.

Volumes are measured in :mod:`skinoct.morphometry._volume`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from skinoct.errors import InputError
from skinoct.io import check_spacing
from skinoct.morphometry._boundaries import (
    Boundaries,
    extract_boundaries,
)
from skinoct.morphometry._entropy import (
    FALLBACK_ENTROPY_THRESHOLD,
    check_entropy,
    default_entropy_band_um,
    default_entropy_threshold,
    default_min_segment_um,
    dej_entropy,
    excess_dej_entropy,
    uncertain_segments,
)
from skinoct.morphometry._thickness import normal_thickness, summarize, vertical_thickness
from skinoct.morphometry._undulation import (
    Papillae,
    amplitudes,
    contour_length_ratio,
    find_papillae_profile,
)

__all__ = [
    "THICKNESS_KEYS",
    "SectionMetrics",
    "VolumeMetrics",
    "flatten_metrics",
    "measure_section",
]

#: Thickness keys of the metrics and the (upper, lower) boundary pair of each.
THICKNESS_KEYS = {
    "stratum_corneum_thickness_um": ("surface", "sc_junction"),
    "viable_epidermis_thickness_um": ("sc_junction", "dej"),
    "epidermis_thickness_um": ("surface", "dej"),
}

#: Fallback only; the default is the bundled model's calibration (issue 11.5).
DEFAULT_ENTROPY_THRESHOLD = FALLBACK_ENTROPY_THRESHOLD
_ENTROPY_KEYS = ("dej_entropy_mean", "dej_uncertain_segments", "dej_uncertain_area_fraction")


@dataclass(frozen=True)
class _MetricsBase:
    spacing_um: tuple[float, ...]
    stratum_corneum_thickness_um: dict[str, float]
    viable_epidermis_thickness_um: dict[str, float]
    epidermis_thickness_um: dict[str, float]
    dej_undulation_index: float
    dej_rms_amplitude_um: float
    dej_peak_to_valley_um: float
    dermal_papillae: dict[str, float]
    coverage: dict[str, float]
    dej_entropy_mean: float | None
    boundaries: Boundaries = field(repr=False)
    papillae: Papillae = field(repr=False)
    thickness: dict[str, np.ndarray] = field(repr=False)
    normal: bool
    papilla_prominence_um: float

    _KEYS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metrics (plain floats, NaN as ``None``), with ``spacing_um``."""
        out: dict[str, Any] = {}
        for key in self._KEYS:
            if key in _ENTROPY_KEYS and self.dej_entropy_mean is None:
                continue  # present only when an entropy map was given
            out[key] = _plain(getattr(self, key))
        return out


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        # 1e-6 µm is far below any pixel: hides float noise such as 2.9999999999999996
        return round(value, 6) if math.isfinite(value) else None
    return value


_COMMON_KEYS = (
    "spacing_um",
    "stratum_corneum_thickness_um",
    "viable_epidermis_thickness_um",
    "epidermis_thickness_um",
    "dej_undulation_index",
    "dej_rms_amplitude_um",
    "dej_peak_to_valley_um",
    "dermal_papillae",
    "coverage",
)


@dataclass(frozen=True)
class SectionMetrics(_MetricsBase):
    """Morphometry of one vertical section; see :func:`measure_section`.

    Attributes
    ----------
    spacing_um : tuple of float
        ``(dz, dx)`` in µm.
    stratum_corneum_thickness_um, viable_epidermis_thickness_um, epidermis_thickness_um : dict
        ``{mean, median, sd, min, max}`` over the columns, µm.
    dej_undulation_index : float
        DEJ contour length / lateral extent.
    dej_rms_amplitude_um, dej_peak_to_valley_um : float
        DEJ roughness about its best-fit line, µm.
    dermal_papillae : dict
        ``{count, density_per_mm, mean_height_um, mean_width_um}``.
    coverage : dict
        Fraction of columns holding each boundary.
    dej_entropy_mean : float or None
        Mean entropy along the DEJ (``None`` without an entropy map).
    dej_uncertain_segments : list of [x_start_um, x_end_um]
        Where the DEJ entropy stays above the threshold (empty without entropy).
    boundaries : Boundaries
        The smoothed boundaries every metric uses.
    thickness : dict of str to ndarray
        Thickness profile ``(n_x,)`` per thickness key (µm, NaN where undefined).
    dej_entropy_profile : ndarray or None
        Entropy along the DEJ per column.
    papillae : Papillae
        Position, height and width of every papilla.
    """

    dej_uncertain_segments: list[list[float]] = field(default_factory=list)
    dej_entropy_profile: np.ndarray | None = field(default=None, repr=False)

    _KEYS = (*_COMMON_KEYS, "dej_entropy_mean", "dej_uncertain_segments")

    @property
    def x_um(self) -> np.ndarray:
        return self.boundaries.x_um


@dataclass(frozen=True)
class VolumeMetrics(_MetricsBase):
    """Morphometry of a volume; see :func:`measure_volume`.

    Same scalar metrics as :class:`SectionMetrics`, over all (y, x) positions, with
    ``dermal_papillae = {count, density_per_mm2, mean_height_um, mean_width_um}``,
    and:

    Attributes
    ----------
    dej_undulation_index : float
        Mean over the y rows of the contour-length ratio along x (what a vertical
        section through the volume shows).
    dej_surface_area_ratio : float
        DEJ surface area / projected area (3-D undulation).
    dej_uncertain_area_fraction : float or None
        Fraction of the DEJ area flagged uncertain (``None`` without entropy).
    dej_surface_um : ndarray (y, x)
        The DEJ depth surface, µm (NaN where absent).
    epidermis_thickness_map_um, stratum_corneum_thickness_map_um,
    viable_epidermis_thickness_map_um : ndarray (y, x)
        Thickness maps, µm.
    dej_entropy_map : ndarray or None
        Entropy at the DEJ per (y, x).
    dej_uncertain_map : ndarray of bool or None
        The DEJ positions flagged uncertain.
    """

    dej_surface_area_ratio: float = float("nan")
    dej_uncertain_area_fraction: float | None = None
    dej_entropy_map: np.ndarray | None = field(default=None, repr=False)
    dej_uncertain_map: np.ndarray | None = field(default=None, repr=False)

    _KEYS = (
        *_COMMON_KEYS[:5],
        "dej_surface_area_ratio",
        *_COMMON_KEYS[5:],
        "dej_entropy_mean",
        "dej_uncertain_area_fraction",
    )

    @property
    def dej_surface_um(self) -> np.ndarray:
        return self.boundaries.dej

    @property
    def epidermis_thickness_map_um(self) -> np.ndarray:
        return self.thickness["epidermis_thickness_um"]

    @property
    def stratum_corneum_thickness_map_um(self) -> np.ndarray:
        return self.thickness["stratum_corneum_thickness_um"]

    @property
    def viable_epidermis_thickness_map_um(self) -> np.ndarray:
        return self.thickness["viable_epidermis_thickness_um"]


def measure_section(
    mask: np.ndarray,
    spacing_um,
    *,
    entropy: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    normal: bool = False,
    papilla_prominence_um: float = 5.0,
    smoothing_um: float | None = None,
    entropy_threshold: float | None = None,
    min_segment_um: float | None = None,
    entropy_band_um: float | None = None,
) -> SectionMetrics:
    """Layer thicknesses, DEJ undulation, papillae and uncertainty of a vertical section.

    Parameters
    ----------
    mask : ndarray of int, (z, x)
        Labels 0 air, 1 stratum corneum, 2 viable epidermis, 3 dermis.
    spacing_um : (float, float)
        ``(dz, dx)`` pixel size in µm (depth, lateral).
    entropy : ndarray, (z, x), optional
        Normalised softmax entropy of the segmentation (0–1); adds
        ``dej_entropy_mean`` and ``dej_uncertain_segments``.
    probabilities : ndarray, (4, z, x), optional
        Class probabilities for sub-pixel boundaries.
    normal : bool
        Measure thickness along the normal of the upper boundary instead of
        vertically (for tilted skin).
    papilla_prominence_um : float
        Minimum prominence of a dermal papilla, µm.
    smoothing_um : float, optional
        σ of the lateral boundary smoothing, µm (default 2 µm at ≤1 µm pixels; see
        :func:`~skinoct.morphometry.default_smoothing_um`).
    entropy_threshold : float, optional
        Threshold on the *excess* DEJ entropy
        (:func:`~skinoct.morphometry.excess_dej_entropy`: slope-corrected band mean
        minus its median along the section) above which the DEJ is uncertain.
        Default: the bundled layer model's calibrated threshold
        (:func:`~skinoct.morphometry.default_entropy_threshold`); for another model
        pass its own (``skinoct.layers.dej_flag_settings(model)``), with the band and
        minimum length it was calibrated at.
    min_segment_um : float, optional
        Minimum length of an uncertain DEJ segment, µm. Default: the one the bundled
        model's threshold was calibrated at
        (:func:`~skinoct.morphometry.default_min_segment_um`).
    entropy_band_um : float, optional
        Half-height of the band around the DEJ over which entropy is averaged, µm.
        Default: the band the bundled model's threshold was calibrated at
        (:func:`~skinoct.morphometry.default_entropy_band_um`).

    Returns
    -------
    SectionMetrics

    Raises
    ------
    InputError
        For a mask that is not 2-D, holds values outside 0–3 or no skin, a bad
        spacing or option, or an entropy/probability map of the wrong shape.

    Notes
    -----
    Thicknesses are summarised over columns where both boundaries exist;
    ``coverage`` says how many that is. Undulation, amplitude and papillae use the
    smoothed DEJ (see :func:`extract_boundaries`).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((60, 50), np.uint8)
    >>> mask[10:16], mask[16:40], mask[40:] = 1, 2, 3
    >>> m = measure_section(mask, (0.5, 1.2))
    >>> m.epidermis_thickness_um["mean"]
    15.0
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"measure_section needs a 2-D (z, x) mask, got shape {mask.shape}")
    spacing = check_spacing(spacing_um, 2)
    if entropy_threshold is None:
        entropy_threshold = default_entropy_threshold()
    if entropy_band_um is None:
        entropy_band_um = default_entropy_band_um()
    if min_segment_um is None:
        min_segment_um = default_min_segment_um()
    _check_options(papilla_prominence_um, entropy_threshold, min_segment_um, entropy_band_um)
    b = extract_boundaries(mask, spacing, probabilities=probabilities, smoothing_um=smoothing_um)
    dx, bounds, dej = spacing[1], b, b.dej
    thickness = _thicknesses(bounds, normal=normal)
    papillae = find_papillae_profile(dej, dx, prominence_um=papilla_prominence_um)
    entropy_mean, segments, profile = None, [], None
    if entropy is not None:
        entropy_mean, segments, profile = _section_entropy(
            check_entropy(entropy, mask.shape), dej, spacing,
            band_um=entropy_band_um, threshold=entropy_threshold, min_um=min_segment_um,
        )  # fmt: skip
    rms, ptv = amplitudes(dej, (dx,))
    return SectionMetrics(
        spacing_um=spacing,
        **{key: summarize(values) for key, values in thickness.items()},
        dej_undulation_index=contour_length_ratio(dej, dx),
        dej_rms_amplitude_um=rms,
        dej_peak_to_valley_um=ptv,
        dermal_papillae=papillae.summary(per="mm"),
        coverage=bounds.coverage,
        dej_entropy_mean=entropy_mean,
        boundaries=bounds,
        papillae=papillae,
        thickness=thickness,
        normal=bool(normal),
        papilla_prominence_um=float(papilla_prominence_um),
        dej_uncertain_segments=segments,
        dej_entropy_profile=profile,
    )


def _section_entropy(entropy, dej, spacing, *, band_um, threshold, min_um):
    """Mean DEJ entropy, uncertain DEJ segments and the entropy profile of a section."""
    profile = dej_entropy(entropy, dej, spacing[0], band_um=band_um)
    excess = excess_dej_entropy(profile, dej, (spacing[1],))
    segments = uncertain_segments(excess, spacing[1], threshold=threshold, min_length_um=min_um)
    return _nanmean(profile), segments, profile


def flatten_metrics(metrics: dict[str, Any], *, sep: str = "_") -> dict[str, Any]:
    """Flatten nested metric dicts for a table row: ``{"coverage_dej": 1.0, ...}``.

    Lists (``spacing_um``, ``dej_uncertain_segments``) become JSON text.
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for sub, inner in flatten_metrics(value, sep=sep).items():
                out[f"{key}{sep}{sub}"] = inner
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(_plain(list(value)))
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- helpers


def _thicknesses(bounds: Boundaries, *, normal: bool) -> dict[str, np.ndarray]:
    out = {}
    for key, (upper, lower) in THICKNESS_KEYS.items():
        if normal:
            out[key] = normal_thickness(bounds[upper], bounds[lower], bounds.lateral_spacing_um)
        else:
            out[key] = vertical_thickness(bounds[upper], bounds[lower])
    return out


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _check_options(prominence, threshold, min_segment, band) -> None:
    for name, value in (
        ("papilla_prominence_um", prominence),
        ("min_segment_um", min_segment),
        ("entropy_band_um", band),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a number >= 0, got {value!r}")
    if not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise InputError(f"entropy_threshold must be in [0, 1], got {threshold!r}")
