"""Reading images, volumes and label masks with their physical spacing."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io._image import AXES, DEFAULT_SPACING_UM, Image, check_spacing
from skinoct.io._labels import validate_labels
from skinoct.io._limits import check_declared_size, check_regular_file, check_spacing_range
from skinoct.io._read_numpy import read_npy, read_npz
from skinoct.io._read_tiff import read_tiff
from skinoct.io._zarr import is_zarr as _is_zarr

__all__ = [
    "IMAGE_SUFFIXES",
    "SpacingWarning",
    "natural_sort_key",
    "read_image",
    "read_mask",
    "read_volume",
    "resolve_axes",
]

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NUMPY_SUFFIXES = (".npy", ".npz")
#: File suffixes :func:`read_image` understands (plus folders of en-face slices).
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + NUMPY_SUFFIXES

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
    check_orientation: bool = False,
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
        Overrides the spacing found in the file, in the order of the returned axes
        (depth first). One value means isotropic.
    axes : str, optional
        How to interpret the axes: ``'zx'``, ``'yx'`` or ``'zyx'``, or the order in
        which the file stores them (``'xz'``, ``'xyz'``, ``'yzx'``, …), which is then
        transposed to depth first. A 3-D array defaults to ``'zyx'``; a 2-D array to
        what skinoct wrote into the file, else ``'zx'`` (a vertical section).
    mmap : bool
        Memory-map uncompressed TIFF and ``.npy`` data instead of loading it.
    check_orientation : bool
        Refuse a section or volume whose air/gel does not lie above the tissue or
        whose axes look swapped (:func:`skinoct.io.check_orientation`).

    Returns
    -------
    Image
        Spacing comes from file metadata, else ``spacing_um``, else 1.0 µm isotropic
        (the LC-OCT default) with a :class:`SpacingWarning` naming the file.

    Raises
    ------
    InputError
        For every problem with the file, naming it: missing, not a regular file,
        unreadable or truncated, declaring more data than the reader limits allow
        (:func:`skinoct.io.set_limits`), empty data, wrong number of dimensions, NaN
        or infinite values, an unknown unit, a spacing outside the plausible range,
        or (with ``check_orientation``) an implausible orientation.
    """
    path = Path(path)
    try:
        if path.is_dir() and _is_zarr(path):  # OME-Zarr: read lazily, chunk by chunk
            image = _read_zarr(path, spacing_um=spacing_um, axes=axes)
        else:
            data, meta_spacing, meta_axes = _read_raw(path, mmap=mmap)
            image = _to_image(path, data, meta_spacing, meta_axes, spacing_um=spacing_um,
                              axes=axes)  # fmt: skip
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this file", path=path) from None
    except Exception as exc:  # any other failure of a parser is a bad file, in one line
        raise InputError(f"cannot read: {_one_line(exc)}", path=path) from exc
    if check_orientation and image.axes in ("zx", "zyx"):
        from skinoct.io._orientation import check_orientation as check

        check(image)
    return image


def read_volume(
    path: str | Path,
    *,
    spacing_um=None,
    mmap: bool = False,
    axes: str = "zyx",
    check_orientation: bool = False,
) -> Image:
    """Read a 3-D volume (z × y × x); see :func:`read_image`.

    ``axes`` may give the order the file stores them in (e.g. ``'xyz'``).

    Raises
    ------
    InputError
        Also when the file holds a 2-D image.
    """
    if sorted(axes) != sorted("zyx"):
        raise InputError(f"a volume's axes are a permutation of 'zyx', got {axes!r}", path=path)
    return read_image(
        path, spacing_um=spacing_um, axes=axes, mmap=mmap, check_orientation=check_orientation
    )


def read_mask(
    path: str | Path,
    *,
    spacing_um=None,
    axes: str | None = None,
    allow_indeterminate: bool = False,
) -> Image:
    """Read a skin-layer label mask (0 air, 1 stratum corneum, 2 epidermis, 3 dermis).

    With ``allow_indeterminate`` (training and evaluation data) the value 255
    (:data:`~skinoct.io.INDETERMINATE`, a boundary that cannot be placed) is accepted too.

    Raises
    ------
    InputError
        As :func:`read_image`, and for values outside 0–3 (and 255 where allowed).
    """
    path = Path(path)
    try:
        data, meta_spacing, meta_axes = _read_raw(path, mmap=False)
        labels = validate_labels(data, path=path, allow_indeterminate=allow_indeterminate)
        return _to_image(path, labels, meta_spacing, meta_axes, spacing_um=spacing_um, axes=axes)
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this file", path=path) from None
    except Exception as exc:
        raise InputError(f"cannot read: {_one_line(exc)}", path=path) from exc


def resolve_axes(axes: str | None, ndim: int, *, path=None) -> tuple[str | None, tuple[int, ...]]:
    """Return ``(canonical axes, transpose order)`` for axes given in file order.

    ``'xz'`` → ``('zx', (1, 0))``; ``'xyz'`` → ``('zyx', (2, 1, 0))``; canonical axes
    come back with the identity order.

    Raises
    ------
    InputError
        If ``axes`` is not a permutation of ``'zx'``, ``'yx'`` or ``'zyx'``.
    """
    if axes is None:
        return None, tuple(range(ndim))
    text = str(axes).strip().lower()
    for canonical in AXES:
        if sorted(text) == sorted(canonical) and len(set(text)) == len(text):
            return canonical, tuple(text.index(a) for a in canonical)
    raise InputError(
        f"axes must be 'zx', 'yx' or 'zyx', or the file's order such as 'xz' or 'xyz'; "
        f"got {str(axes)[:20]!r}",
        path=path,
    )


# --------------------------------------------------------------------------- helpers


def _read_zarr(path: Path, *, spacing_um, axes) -> Image:
    from skinoct.io._zarr import read_ome_zarr

    if axes is not None and axes not in AXES:
        raise InputError(
            f"axes {axes!r}: an OME-Zarr image names its axes in its metadata; give "
            "'zx', 'yx' or 'zyx'",
            path=path,
        )
    image = read_ome_zarr(path, spacing_um=spacing_um, axes=axes)
    check_spacing_range(image.spacing_um, path=path, source=image.spacing_source)
    return image


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
    axes, order = resolve_axes(axes, data.ndim, path=path)
    if axes is None:
        axes = "zyx" if data.ndim == 3 else (meta_axes if meta_axes in ("zx", "yx") else "zx")
    if len(axes) != data.ndim:
        want = "a 3-D volume" if len(axes) == 3 else "a 2-D image"
        raise InputError(
            f"expected {want}, got {data.ndim}-D data of shape {data.shape}", path=path
        )
    if order != tuple(range(data.ndim)):  # the file stores the axes in another order
        data = data.transpose(order)
        if meta_spacing is not None and len(meta_spacing) == data.ndim:
            meta_spacing = tuple(meta_spacing[i] for i in order)
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
                stacklevel=4,
            )
    check_spacing_range(spacing, path=path, source=source)
    return Image(data=data, spacing_um=spacing, axes=axes, path=path, spacing_source=source)


def _all_finite(data: np.ndarray) -> bool:
    # Chunked so a memory-mapped volume is not pulled into memory all at once.
    flat = data.reshape(data.shape[0], -1)
    return all(np.isfinite(flat[i : i + 64]).all() for i in range(0, flat.shape[0], 64))


def _read_raw(path: Path, *, mmap: bool):
    """Return ``(data, spacing or None, axes hint or None)``."""
    suffix = path.suffix.lower()
    if check_regular_file(path, folder_ok=suffix not in IMAGE_SUFFIXES):
        return _read_folder(path)
    try:
        if suffix in TIFF_SUFFIXES:
            return read_tiff(path, mmap=mmap)
        if suffix in PIL_SUFFIXES:
            return _read_pil(path), None, None
        if suffix == ".npy":
            return read_npy(path, mmap=mmap), None, None
        if suffix == ".npz":
            return read_npz(path)
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this file", path=path) from None
    except Exception as exc:  # any parser failure is a bad file, reported in one line
        kind = suffix.lstrip(".").upper() or "file"
        raise InputError(f"cannot read {kind}: {_one_line(exc)}", path=path) from exc
    raise InputError(
        f"unsupported file type {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)} "
        "or a folder of slices",
        path=path,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        bands = len(img.getbands()) if img.mode not in ("1", "P") else 1
        depth = 4 if img.mode in ("I", "F", "I;32") else 2 if img.mode.startswith("I;16") else 1
        check_declared_size((img.height, img.width, bands), depth, path=path, what="image")
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


def _read_folder(path: Path):
    files = sorted(
        (
            p
            for p in path.iterdir()
            if p.suffix.lower() in TIFF_SUFFIXES + PIL_SUFFIXES and p.is_file()
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
        if not slices:  # the stack's size, before reading the other slices
            check_declared_size((len(files), *data.shape), data.dtype.itemsize, path=path,
                                what="folder of slices")  # fmt: skip
        slices.append(data)
    volume = np.stack(slices, axis=0)
    # A stack of en-face files records no z step, so the volume's spacing comes from
    # the caller (``spacing_um``) or the LC-OCT default, with the usual warning.
    return volume, None, "zyx"
