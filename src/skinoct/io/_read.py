"""Reading images, volumes and label masks with their physical spacing."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io._image import DEFAULT_SPACING_UM, Image, check_spacing
from skinoct.io._labels import validate_labels
from skinoct.io._zarr import is_zarr as _is_zarr

__all__ = [
    "IMAGE_SUFFIXES",
    "SpacingWarning",
    "natural_sort_key",
    "read_image",
    "read_mask",
    "read_volume",
]

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NUMPY_SUFFIXES = (".npy", ".npz")
#: File suffixes :func:`read_image` understands (plus folders of en-face slices).
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + NUMPY_SUFFIXES

# Description that skinoct writes into OME-TIFF to keep vertical ('zx') and en-face
# ('yx') 2-D images apart: OME itself names the two axes of a plane Y and X.
_AXES_TAG = re.compile(r"skinoct:axes=(zx|yx|zyx)")

_UNIT_TO_UM = {
    "nm": 1e-3, "nanometer": 1e-3,
    "µm": 1.0, "um": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "\\u00b5m": 1.0,
    "mm": 1e3, "millimeter": 1e3,
    "cm": 1e4, "centimeter": 1e4,
    "m": 1e6, "meter": 1e6,
}  # fmt: skip

_warned_default_spacing: set[str] = set()


class SpacingWarning(UserWarning):
    """A file carried no spacing, so the LC-OCT default was used."""


def natural_sort_key(path: str | Path) -> list:
    """Key that sorts ``slice2`` before ``slice10`` (natural order)."""
    parts = re.split(r"(\d+)", Path(path).name)
    return [int(p) if p.isdigit() else p.lower() for p in parts]


def read_image(
    path: str | Path,
    *,
    spacing_um=None,
    axes: str | None = None,
    mmap: bool = False,
) -> Image:
    """Read a 2-D image or a 3-D volume with its spacing in µm.

    Parameters
    ----------
    path : str or Path
        A TIFF / OME-TIFF / ImageJ-TIFF, PNG / JPEG / BMP, ``.npy`` / ``.npz`` file,
        an OME-Zarr image (``*.zarr`` folder, read lazily: ``data`` is a
        :class:`~skinoct.io.LazyArray`), or a folder of en-face slices (read as a
        volume, natural sort order).
    spacing_um : float or sequence of float, optional
        Overrides the spacing found in the file. One value means isotropic.
    axes : {'zx', 'yx', 'zyx'}, optional
        How to interpret the axes. A 3-D array is always ``'zyx'``; a 2-D array
        defaults to what skinoct wrote into the file, else ``'zx'`` (a vertical
        section).
    mmap : bool
        Memory-map uncompressed TIFF and ``.npy`` data instead of loading it.

    Returns
    -------
    Image
        Spacing comes from file metadata, else ``spacing_um``, else 1.0 µm isotropic
        (the LC-OCT default) with a :class:`SpacingWarning` naming the file.

    Raises
    ------
    InputError
        Missing or unreadable file, empty data, wrong number of dimensions, NaN or
        infinite values, or an invalid spacing.
    """
    path = Path(path)
    if path.is_dir() and _is_zarr(path):  # OME-Zarr: read lazily, chunk by chunk
        from skinoct.io._zarr import read_ome_zarr

        return read_ome_zarr(path, spacing_um=spacing_um, axes=axes)
    data, meta_spacing, meta_axes = _read_raw(path, mmap=mmap)
    return _to_image(path, data, meta_spacing, meta_axes, spacing_um=spacing_um, axes=axes)


def read_volume(path: str | Path, *, spacing_um=None, mmap: bool = False) -> Image:
    """Read a 3-D volume (z × y × x); see :func:`read_image`.

    Raises
    ------
    InputError
        Also when the file holds a 2-D image.
    """
    image = read_image(path, spacing_um=spacing_um, axes="zyx", mmap=mmap)
    return image


def read_mask(path: str | Path, *, spacing_um=None, axes: str | None = None) -> Image:
    """Read a skin-layer label mask (0 air, 1 stratum corneum, 2 epidermis, 3 dermis).

    Raises
    ------
    InputError
        As :func:`read_image`, and for values outside 0–3.
    """
    path = Path(path)
    data, meta_spacing, meta_axes = _read_raw(path, mmap=False)
    labels = validate_labels(data, path=path)
    return _to_image(path, labels, meta_spacing, meta_axes, spacing_um=spacing_um, axes=axes)


# --------------------------------------------------------------------------- helpers


def _to_image(path, data, meta_spacing, meta_axes, *, spacing_um, axes) -> Image:
    if data.size == 0:
        raise InputError(f"image is empty (shape {data.shape})", path=path)
    if data.ndim not in (2, 3):
        raise InputError(
            f"expected a 2-D image or a 3-D volume, got {data.ndim}-D data of shape {data.shape}",
            path=path,
        )
    if data.dtype.kind not in "uif":
        raise InputError(f"unsupported pixel type {data.dtype}", path=path)
    if data.dtype.kind == "f" and not _all_finite(data):
        raise InputError("image holds NaN or infinite values", path=path)
    if axes is None:
        axes = "zyx" if data.ndim == 3 else (meta_axes if meta_axes in ("zx", "yx") else "zx")
    if len(axes) != data.ndim:
        want = "a 3-D volume" if len(axes) == 3 else "a 2-D image"
        raise InputError(
            f"expected {want}, got {data.ndim}-D data of shape {data.shape}", path=path
        )
    if spacing_um is not None:
        spacing, source = check_spacing(spacing_um, data.ndim, path=path), "override"
    elif meta_spacing is not None and len(meta_spacing) == data.ndim:
        spacing, source = check_spacing(meta_spacing, data.ndim, path=path), "metadata"
    else:
        spacing, source = (DEFAULT_SPACING_UM,) * data.ndim, "default"
        key = str(path.resolve())
        if key not in _warned_default_spacing:
            _warned_default_spacing.add(key)
            warnings.warn(
                f"{path}: no spacing in the file's metadata and none given; using the LC-OCT "
                f"default {DEFAULT_SPACING_UM} µm per pixel on every axis",
                SpacingWarning,
                stacklevel=3,
            )
    return Image(data=data, spacing_um=spacing, axes=axes, path=path, spacing_source=source)


def _all_finite(data: np.ndarray) -> bool:
    # Chunked so a memory-mapped volume is not pulled into memory all at once.
    flat = data.reshape(data.shape[0], -1)
    return all(np.isfinite(flat[i : i + 64]).all() for i in range(0, flat.shape[0], 64))


def _read_raw(path: Path, *, mmap: bool):
    """Return ``(data, spacing or None, axes hint or None)``."""
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        return _read_folder(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path, mmap=mmap)
        if suffix in PIL_SUFFIXES:
            return _read_pil(path), None, None
        if suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None), None, None
        if suffix == ".npz":
            return _read_npz(path)
    except InputError:
        raise
    except Exception as exc:  # any parser failure is a bad file, reported in one line
        kind = suffix.lstrip(".").upper() or "file"
        raise InputError(f"cannot read {kind}: {_one_line(exc)}", path=path) from exc
    raise InputError(
        f"unsupported file type {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)} "
        "or a folder of slices",
        path=path,
    )


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read_tiff(path: Path, *, mmap: bool):
    import logging

    import tifffile

    # tifffile logs each damaged tag before raising; the raised error is reported instead.
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return _read_tiff_quiet(path, mmap=mmap, tifffile=tifffile)
    finally:
        logger.setLevel(level)


def _read_tiff_quiet(path: Path, *, mmap: bool, tifffile):
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise InputError("TIFF holds no image data", path=path)
        series = tif.series[0]
        if mmap:
            try:
                data = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or non-contiguous: load normally
                data = series.asarray()
        else:
            data = series.asarray()
        series_axes = series.axes
        spacing, axes_hint = None, None
        if tif.is_ome:
            spacing, axes_hint = _ome_spacing(tif.ome_metadata, series_axes)
        elif tif.is_imagej:
            spacing = _imagej_spacing(tif, series_axes)
        else:
            spacing = _tag_spacing(tif.pages.first, series_axes)
    data = _squeeze_to_axes(np.asarray(data) if not mmap else data, series_axes, path)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and "S" in series_axes:
        data = _to_gray(data, path)
    return data, spacing, axes_hint


def _squeeze_to_axes(data, series_axes: str, path: Path):
    # Drop singleton axes (T, C, Q with length 1) but keep spatial ones.
    keep = [i for i, n in enumerate(data.shape) if n > 1 or series_axes[i] in "ZYX"]
    if len(keep) != data.ndim:
        data = data.reshape([data.shape[i] for i in keep])
    return data


def _ome_spacing(ome_xml: str, series_axes: str):
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
        return float(value) * _UNIT_TO_UM.get(unit, 1.0)

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
    factor = _UNIT_TO_UM.get(unit)
    if factor is None:
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


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        img.load()
        if img.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
            data = np.asarray(img.convert("RGB"))
            return _to_gray(data, path)
        if img.mode == "1":
            return np.asarray(img, dtype=np.uint8)
        return np.asarray(img)


def _to_gray(data: np.ndarray, path: Path) -> np.ndarray:
    rgb = data[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    warnings.warn(f"{path}: colour image converted to grayscale (luminance)", stacklevel=4)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    gray = rgb.astype(np.float32) @ weights
    return gray.round().astype(data.dtype) if data.dtype.kind in "ui" else gray


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if "data" in names:
            data = npz["data"]
        elif len(names) == 1:
            data = npz[names[0]]
        else:
            raise InputError(f".npz needs an array named 'data', found {names}", path=path)
        spacing = tuple(npz["spacing_um"].tolist()) if "spacing_um" in names else None
        axes = str(npz["axes"]) if "axes" in names else None
    return data, spacing, axes


def _read_folder(path: Path):
    files = sorted(
        (
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES + PIL_SUFFIXES
        ),
        key=natural_sort_key,
    )
    if not files:
        raise InputError("folder holds no image slices (.tif, .png, …)", path=path)
    slices = []
    for file in files:
        data, _, _ = _read_raw(file, mmap=False)
        if data.ndim != 2:
            raise InputError(f"slice is {data.ndim}-D, expected 2-D", path=file)
        if slices and data.shape != slices[0].shape:
            raise InputError(f"slice shape {data.shape} differs from {slices[0].shape}", path=file)
        slices.append(data)
    volume = np.stack(slices, axis=0)
    # A stack of en-face files records no z step, so the volume's spacing comes from
    # the caller (``spacing_um``) or the LC-OCT default, with the usual warning.
    return volume, None, "zyx"
