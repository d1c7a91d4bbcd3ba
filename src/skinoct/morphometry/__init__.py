"""Morphometry of skin layers from label masks, for vertical sections and volumes.

From a label mask (0 air, 1 stratum corneum, 2 viable epidermis, 3 dermis) and its
spacing in µm: the three boundaries (surface, SC junction, DEJ), layer thicknesses
(vertical or along the local normal), DEJ undulation (contour-length ratio, 3-D
surface-area ratio, RMS amplitude, peak-to-valley), dermal papillae, boundary
coverage and, with the segmentation's entropy map, uncertain stretches of the DEJ.
See ``docs/morphometry.md`` for the definitions and their sources.
"""

from skinoct.morphometry._boundaries import (
    BOUNDARY_NAMES,
    Boundaries,
    default_smoothing_um,
    extract_boundaries,
)
from skinoct.morphometry._entropy import (
    FALLBACK_ENTROPY_BAND_UM,
    FALLBACK_ENTROPY_THRESHOLD,
    FALLBACK_MIN_SEGMENT_UM,
    default_entropy_band_um,
    default_entropy_threshold,
    default_min_segment_um,
    dej_entropy,
    dej_flag_score,
    excess_dej_entropy,
    uncertain_area,
    uncertain_dej_area,
    uncertain_segments,
)
from skinoct.morphometry._metrics import (
    THICKNESS_KEYS,
    SectionMetrics,
    VolumeMetrics,
    flatten_metrics,
    measure_section,
)
from skinoct.morphometry._smoothing import smooth_boundary
from skinoct.morphometry._surfaces import (
    crop_depth,
    fill_nearest,
    interpolate_rows,
    labels_from_surfaces,
    remove_outliers,
    section_rows,
    surfaces_on_grid,
)
from skinoct.morphometry._thickness import normal_thickness, summarize, vertical_thickness
from skinoct.morphometry._undulation import (
    Papillae,
    contour_length_ratio,
    find_papillae_profile,
    find_papillae_surface,
    peak_to_valley,
    rms_amplitude,
    surface_area_ratio,
)
from skinoct.morphometry._volume import measure_surfaces, measure_volume

__all__ = [
    "BOUNDARY_NAMES",
    "FALLBACK_ENTROPY_BAND_UM",
    "FALLBACK_ENTROPY_THRESHOLD",
    "FALLBACK_MIN_SEGMENT_UM",
    "THICKNESS_KEYS",
    "Boundaries",
    "Papillae",
    "SectionMetrics",
    "VolumeMetrics",
    "contour_length_ratio",
    "crop_depth",
    "default_entropy_band_um",
    "default_entropy_threshold",
    "default_min_segment_um",
    "default_smoothing_um",
    "dej_entropy",
    "dej_flag_score",
    "excess_dej_entropy",
    "extract_boundaries",
    "fill_nearest",
    "find_papillae_profile",
    "find_papillae_surface",
    "flatten_metrics",
    "interpolate_rows",
    "labels_from_surfaces",
    "measure_section",
    "measure_surfaces",
    "measure_volume",
    "normal_thickness",
    "peak_to_valley",
    "remove_outliers",
    "rms_amplitude",
    "section_rows",
    "smooth_boundary",
    "summarize",
    "surface_area_ratio",
    "surfaces_on_grid",
    "uncertain_area",
    "uncertain_dej_area",
    "uncertain_segments",
    "vertical_thickness",
]
