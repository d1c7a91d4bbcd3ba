"""Reading ``.npy`` and ``.npz`` files without trusting their headers.

Every array's header (magic, shape, dtype) is parsed and checked against the reader
limits (:mod:`skinoct.io._limits`) before a byte of pixel data is allocated; an
``.npz`` is opened as the zip archive it is, so a member that is not an NPY array, a
member name that is not a plain identifier, or a member that inflates beyond what its
header declares is an :class:`~skinoct.errors.InputError` naming the file.
Format reference: ``numpy.lib.format`` (NEP 1).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io._limits import check_declared_size

__all__ = ["read_npy", "read_npz"]

# What an image array may hold: numbers (booleans too, so a mask reader can name them).
_PIXEL_KINDS = "buif"
_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_HEADER_SLACK = 1 << 16  # an NPY header is at most 64 KiB (numpy's own limit is lower)


def read_npy(path: Path, *, mmap: bool) -> np.ndarray:
    """Read an ``.npy`` image after checking its header; memory-map it on request.

    Raises
    ------
    InputError
        Not an NPY file, an object or structured dtype, a declared size above the
        limit, or data shorter than the header declares.
    """
    with open(path, "rb") as fh:
        shape, _, dtype = _read_header(fh, path=path, what="NPY header")
    _check_pixels(shape, dtype, path=path, what=".npy array")
    if 0 in shape:
        raise InputError(f"image is empty (shape {shape})", path=path)
    # The memory map costs nothing and fails if the file is shorter than declared.
    data = np.load(path, allow_pickle=False, mmap_mode="r")
    return data if mmap else np.array(data)


def read_npz(path: Path):
    """Return ``(data, spacing or None, axes or None)`` of an ``.npz`` image.

    The pixels are the member ``data`` (or the only member). Optional members:
    ``spacing_um`` (1–3 finite numbers) and ``axes`` (a string such as ``'zx'``).

    Raises
    ------
    InputError
        Bad member names, a member that is not NPY, wrong dtype or rank, a declared
        size above the limit, or a member that inflates beyond its declared size.
    """
    with zipfile.ZipFile(path) as archive:
        members = {}
        for info in archive.infolist():
            if not _MEMBER.fullmatch(info.filename):
                raise InputError(
                    f".npz member {info.filename[:80]!r} is not a plain '<name>.npy' array",
                    path=path,
                )
            members[info.filename[:-4]] = info
        if not members:
            raise InputError(".npz holds no arrays", path=path)
        if "data" in members:
            name = "data"
        elif len(members) == 1:
            name = next(iter(members))
        else:
            found = ", ".join(sorted(members))
            raise InputError(f".npz needs an array named 'data', found {found}", path=path)
        data = _read_member(archive, members[name], path=path, kind="pixels")
        spacing = axes = None
        if "spacing_um" in members and name != "spacing_um":
            spacing = _spacing(_read_member(archive, members["spacing_um"], path=path,
                                            kind="spacing"), path)  # fmt: skip
        if "axes" in members and name != "axes":
            axes = _axes(_read_member(archive, members["axes"], path=path, kind="axes"), path)
    return data, spacing, axes


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, path: Path, kind: str):
    label = f".npz member {info.filename!r}"
    with archive.open(info) as fh:
        shape, fortran, dtype = _read_header(fh, path=path, what=label)
        if kind == "pixels":
            nbytes = _check_pixels(shape, dtype, path=path, what=label)
        elif kind == "spacing":
            if dtype.kind not in "uif" or len(shape) > 1 or int(np.prod(shape)) > 3:
                raise InputError(f"{label} must hold 1–3 numbers, got {dtype} {shape}",
                                 path=path)  # fmt: skip
            nbytes = int(np.prod(shape)) * dtype.itemsize
        else:
            if dtype.kind != "U" or shape != () or dtype.itemsize > 64:
                raise InputError(f"{label} must be a short string such as 'zx', got "
                                 f"{dtype} {shape}", path=path)  # fmt: skip
            nbytes = dtype.itemsize
        # A deflated member may claim to be larger than its header says (zip bomb):
        # only the declared bytes are ever decompressed, plus the header itself.
        if info.file_size > nbytes + _HEADER_SLACK:
            raise InputError(
                f"{label} inflates to {info.file_size} bytes but declares {nbytes} bytes "
                "of data",
                path=path,
            )
        count = int(np.prod(shape))
        raw = fh.read(nbytes)
    if len(raw) != nbytes:
        raise InputError(f"{label} is truncated ({len(raw)} of {nbytes} bytes)", path=path)
    array = np.frombuffer(raw, dtype=dtype, count=count)
    if fortran:
        return array.reshape(shape[::-1]).transpose().copy()
    return array.reshape(shape).copy()


def _read_header(fh, *, path: Path, what: str):
    """Return ``(shape, fortran_order, dtype)`` from an NPY stream."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported NPY version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError, UnicodeError) as exc:
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{what} is not a valid NPY array ({text})", path=path) from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"{what} holds {dtype}, not plain numbers", path=path)
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _check_pixels(shape, dtype: np.dtype, *, path: Path, what: str) -> int:
    if dtype.kind not in _PIXEL_KINDS:
        raise InputError(f"{what} has unsupported pixel type {dtype}", path=path)
    if len(shape) not in (2, 3):
        raise InputError(
            f"expected a 2-D image or a 3-D volume, got {len(shape)}-D data of shape {shape}",
            path=path,
        )
    return check_declared_size(shape, dtype.itemsize, path=path, what=what)


def _spacing(values: np.ndarray, path: Path) -> tuple[float, ...]:
    spacing = tuple(float(v) for v in np.atleast_1d(values))
    if not spacing or not all(np.isfinite(v) and v > 0 for v in spacing):
        raise InputError(f".npz spacing_um must be positive finite numbers, got {spacing}",
                         path=path)  # fmt: skip
    return spacing


def _axes(value: np.ndarray, path: Path) -> str:
    text = str(value[()]) if value.shape == () else ""
    if text not in ("zx", "yx", "zyx"):
        raise InputError(f".npz axes must be 'zx', 'yx' or 'zyx', got {text[:20]!r}", path=path)
    return text
