"""Reading TIFF, OME-TIFF and ImageJ-TIFF files with their spacing, defensively.

Before any pixel is decoded, the size the file declares (OME ``Pixels`` sizes, ImageJ
``images=``, tifffile's shaped description, then the series shape) is checked against
the reader limits; a series that declares more planes than the file holds, or a chain
of pages that breaks before the end of the file (a truncated multi-page TIFF), is
refused instead of being read as zeros or as a single 2-D section; OME physical-size
units are converted to µm or refused with the list of units understood.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io._limits import check_declared_size

__all__ = ["UNIT_TO_UM", "read_tiff"]

# Description that skinoct writes into OME-TIFF to keep vertical ('zx') and en-face
# ('yx') 2-D images apart: OME itself names the two axes of a plane Y and X.
_AXES_TAG = re.compile(r"skinoct:axes=(zx|yx|zyx)")

#: Length units understood in image metadata, with their size in µm.
UNIT_TO_UM = {
    "nm": 1e-3, "nanometer": 1e-3,
    "µm": 1.0, "um": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "\\u00b5m": 1.0,
    "mm": 1e3, "millimeter": 1e3,
    "cm": 1e4, "centimeter": 1e4,
    "m": 1e6, "meter": 1e6,
}  # fmt: skip
_ACCEPTED_UNITS = "nm, µm (um), mm, cm, m"

# tifffile logs, rather than raises, when a page or tag points past the end of the
# file; those messages mean the file is truncated or damaged.
_DAMAGE = ("invalid page offset", "invalid value offset", "failed to read")
_DETAIL = re.compile(r"(invalid (page|value) offset \d+|failed to read \d+ bytes, got \d+)")

_OME_TYPES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
              "float": 4, "double": 8, "bit": 1, "complex": 8, "double-complex": 16}  # fmt: skip


class _Damage(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(key in message for key in _DAMAGE):
            self.messages.append(message)


def read_tiff(path: Path, *, mmap: bool):
    """Return ``(data, spacing or None, axes hint or None)`` of a TIFF file.

    Raises
    ------
    InputError
        No image data, a declared size above the limit, missing planes, a truncated
        chain of pages, an unknown unit, or any parser failure.
    """
    import tifffile

    # tifffile logs each damaged tag before raising; the raised error is reported
    # instead, and logged damage (offsets past the end of the file) becomes an error.
    logger = logging.getLogger("tifffile")
    level, propagate = logger.level, logger.propagate
    handler = _Damage()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        return _read(path, mmap=mmap, tifffile=tifffile, damage=handler)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _read(path: Path, *, mmap: bool, tifffile, damage: _Damage):
    with tifffile.TiffFile(path) as tif:
        _check_damage(damage, path)
        if not tif.pages or tif.pages.first is None:
            raise InputError("TIFF holds no image data", path=path)
        _check_declared(tif, path)
        if not tif.series:
            raise InputError("TIFF holds no image data", path=path)
        series = tif.series[0]
        check_declared_size(series.shape, np.dtype(series.dtype).itemsize, path=path,
                            what="TIFF series")  # fmt: skip
        _check_planes(series, path)
        _check_damage(damage, path)
        if mmap:
            try:
                data = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or non-contiguous: load normally
                data = series.asarray()
        else:
            data = series.asarray()
        _check_damage(damage, path)
        series_axes = series.axes
        spacing, axes_hint = None, None
        if tif.is_ome:
            spacing, axes_hint = _ome_spacing(tif.ome_metadata, series_axes, path)
        elif tif.is_imagej:
            spacing = _imagej_spacing(tif, series_axes)
        else:
            spacing = _tag_spacing(tif.pages.first, series_axes)
    data = _squeeze_to_axes(np.asarray(data) if not mmap else data, series_axes)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and "S" in series_axes:
        from skinoct.io._read import _to_gray

        data = _to_gray(data, path)
    return data, spacing, axes_hint


def _check_damage(damage: _Damage, path: Path) -> None:
    if damage.messages:
        found = _DETAIL.search(damage.messages[0])
        detail = found.group(0) if found else damage.messages[0][:80]
        raise InputError(
            f"cannot read TIFF: truncated or damaged ({detail}); it would be read incompletely",
            path=path,
        )


def _check_declared(tif, path: Path) -> None:
    """Refuse a size declared in the metadata before tifffile builds its series."""
    page = tif.pages.first
    itemsize = np.dtype(page.dtype).itemsize if page.dtype is not None else 1
    if tif.is_ome:
        for pixels in _ome_pixels(tif.ome_metadata):
            dims = []
            for axis in "TCZYX":
                value = pixels.get(f"Size{axis}", 1)
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                if not (math.isfinite(number) and number == int(number) and number >= 1):
                    raise InputError(f"OME Size{axis}={value!r} is not a positive integer",
                                     path=path)  # fmt: skip
                dims.append(int(number))
            size = _OME_TYPES.get(str(pixels.get("Type", "")).lower(), itemsize)
            check_declared_size(dims, size, path=path, what="OME metadata")
    elif tif.is_imagej:
        images = (tif.imagej_metadata or {}).get("images", 1)
        try:
            images = int(images)
        except (TypeError, ValueError):
            raise InputError(f"ImageJ images={images!r} is not an integer", path=path) from None
        check_declared_size((images, *page.shape), itemsize, path=path, what="ImageJ metadata")
    elif tif.is_shaped:
        shaped = tif.shaped_metadata or ()
        shape = shaped[0].get("shape") if shaped and isinstance(shaped[0], dict) else None
        if isinstance(shape, (list, tuple)) and all(isinstance(n, int) for n in shape):
            check_declared_size(shape, itemsize, path=path, what="TIFF shape description")


def _ome_pixels(ome_xml: str) -> list[dict]:
    import tifffile

    meta = tifffile.xml2dict(ome_xml).get("OME", {})
    images = meta.get("Image", [])
    images = images if isinstance(images, list) else [images]
    return [img.get("Pixels", {}) for img in images[:1] if isinstance(img, dict)]


def _check_planes(series, path: Path) -> None:
    pages = getattr(series, "pages", None)
    if pages is None:
        return
    present = sum(p is not None for p in pages)
    if present < len(pages):
        raise InputError(
            f"TIFF metadata declares {len(pages)} planes but the file holds {present} "
            "(truncated, or the metadata does not describe this file)",
            path=path,
        )


def _squeeze_to_axes(data, series_axes: str):
    # Drop singleton axes (T, C, Q with length 1) but keep spatial ones.
    keep = [i for i, n in enumerate(data.shape) if n > 1 or series_axes[i] in "ZYX"]
    if len(keep) != data.ndim:
        data = data.reshape([data.shape[i] for i in keep])
    return data


def _ome_spacing(ome_xml: str, series_axes: str, path: Path):
    import tifffile

    meta = tifffile.xml2dict(ome_xml).get("OME", {})
    image = meta.get("Image", {})
    if isinstance(image, list):
        image = image[0]
    pixels = image.get("Pixels", {})
    description = str(image.get("Description", "") or "")
    match = _AXES_TAG.search(description)
    axes_hint = match.group(1) if match else None

    def size(axis: str):
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            return None
        unit = str(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        factor = UNIT_TO_UM.get(unit.strip())
        if factor is None:
            raise InputError(
                f"OME PhysicalSize{axis}Unit {unit[:20]!r} is not a unit skinoct reads; "
                f"accepted: {_ACCEPTED_UNITS}",
                path=path,
            )
        try:
            return float(value) * factor
        except (TypeError, ValueError):
            raise InputError(f"OME PhysicalSize{axis}={value!r} is not a number",
                             path=path) from None  # fmt: skip

    sy, sx, sz = size("Y"), size("X"), size("Z")
    spatial = [a for a in series_axes if a in "ZYX"]
    if spatial == ["Z", "Y", "X"] and None not in (sz, sy, sx):
        return (sz, sy, sx), axes_hint
    if spatial[-2:] == ["Y", "X"] and None not in (sy, sx) and "Z" not in spatial:
        return (sy, sx), axes_hint
    if None not in (sy, sx) and sz is not None:
        return (sz, sy, sx), axes_hint
    return None, axes_hint


def _imagej_spacing(tif, series_axes: str):
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "µ").lower()
    factor = UNIT_TO_UM.get(unit)
    if factor is None:  # 'pixel' or nothing: ImageJ's uncalibrated image
        return None
    sy, sx = _resolution_spacing(tif.pages.first)
    if sy is None:
        return None
    if "Z" in series_axes:
        sz = ij.get("spacing")
        if sz is None:
            return None
        return (float(sz) * factor, sy * factor, sx * factor)
    return (sy * factor, sx * factor)


def _resolution_spacing(page):
    try:
        xres = page.tags["XResolution"].value
        yres = page.tags["YResolution"].value
    except KeyError:
        return None, None
    sx = xres[1] / xres[0] if xres[0] else None
    sy = yres[1] / yres[0] if yres[0] else None
    return (sy, sx) if sx and sy else (None, None)


def _tag_spacing(page, series_axes: str):
    # Plain TIFF: trust resolution tags only in centimetres; inch values are usually
    # a screen DPI that says nothing about the sample.
    unit = page.tags.get("ResolutionUnit")
    if unit is None or int(unit.value) != 3 or "Z" in series_axes:
        return None
    sy, sx = _resolution_spacing(page)
    if sy is None:
        return None
    return (sy * 1e4, sx * 1e4)
