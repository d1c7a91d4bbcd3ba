"""Image I/O with physical units.

Every image travels as an :class:`Image`: pixel ``data``, ``spacing_um`` per axis,
``axes`` (``'zx'`` vertical section, ``'yx'`` en-face image, ``'zyx'`` volume) and
where the spacing came from. Label masks use 0 air, 1 stratum corneum, 2 viable
epidermis, 3 dermis.

The readers refuse hostile or careless files with an :class:`~skinoct.errors.InputError`
naming the file: sizes above :func:`set_limits` (``SKINOCT_MAX_IMAGE_BYTES``), FIFOs and
devices, unknown units, implausible spacings (``SKINOCT_SPACING_RANGE_UM``), truncated
TIFFs; :func:`check_orientation` refuses sections and volumes whose air/gel is not above
the tissue.
"""

from skinoct.io._atomic import (
    atomic_path,
    json_safe,
    remove_stale_temp_files,
    write_json,
    write_text,
)
from skinoct.io._csv import (
    neutralise_table,
    read_csv_table,
    restore_csv_cell,
    safe_csv_cell,
    write_csv_table,
)
from skinoct.io._image import AXES, DEFAULT_SPACING_UM, Image, check_spacing
from skinoct.io._labels import (
    AIR,
    DERMIS,
    EPIDERMIS,
    INDETERMINATE,
    LABEL_NAMES,
    LABEL_VALUES,
    STRATUM_CORNEUM,
    check_label_set,
    validate_labels,
)
from skinoct.io._limits import ReadLimits, check_regular_file, get_limits, read_limits, set_limits
from skinoct.io._normalize import normalize_intensity
from skinoct.io._orientation import OrientationVerdict, check_orientation, orientation_verdict
from skinoct.io._provenance import provenance_banner
from skinoct.io._read import (
    IMAGE_SUFFIXES,
    SpacingWarning,
    natural_sort_key,
    read_image,
    read_mask,
    read_volume,
    resolve_axes,
)
from skinoct.io._read_numpy import read_npy
from skinoct.io._write import to_uint8, write_image
from skinoct.io._zarr import (
    LazyArray,
    is_zarr,
    read_ome_zarr,
    read_ome_zarr_labels,
    tree_sha256,
    write_ome_zarr,
)

__all__ = [
    "AIR",
    "AXES",
    "DEFAULT_SPACING_UM",
    "DERMIS",
    "EPIDERMIS",
    "IMAGE_SUFFIXES",
    "INDETERMINATE",
    "LABEL_NAMES",
    "LABEL_VALUES",
    "STRATUM_CORNEUM",
    "Image",
    "LazyArray",
    "OrientationVerdict",
    "ReadLimits",
    "SpacingWarning",
    "atomic_path",
    "check_label_set",
    "check_orientation",
    "check_regular_file",
    "check_spacing",
    "get_limits",
    "is_zarr",
    "json_safe",
    "natural_sort_key",
    "neutralise_table",
    "normalize_intensity",
    "orientation_verdict",
    "provenance_banner",
    "read_csv_table",
    "read_image",
    "read_limits",
    "read_mask",
    "read_npy",
    "read_ome_zarr",
    "read_ome_zarr_labels",
    "read_volume",
    "remove_stale_temp_files",
    "resolve_axes",
    "restore_csv_cell",
    "safe_csv_cell",
    "set_limits",
    "to_uint8",
    "tree_sha256",
    "validate_labels",
    "write_csv_table",
    "write_image",
    "write_json",
    "write_ome_zarr",
    "write_text",
]
