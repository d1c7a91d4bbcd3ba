"""The one reader of a user-given DEJ: a depth in µm, or a (y, x) surface file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from skinoct.errors import InputError

__all__ = ["read_dej"]

#: Array names looked up in an ``.npz`` DEJ file, in order (``dej_um``: the phantom's
#: ground truth).
NPZ_NAMES = ("dej_um", "dej", "data")


def read_dej(
    value, *, shape_yx: tuple[int, int] | None = None, path: str | Path | None = None
) -> float | np.ndarray:
    """A DEJ given by the user: one depth in µm, or a surface of depths in µm per (y, x).

    Parameters
    ----------
    value : float, str, Path or ndarray
        A number (or text holding one): one depth in µm from the top of the volume,
        for the whole field. A 2-D array, or a file holding one: ``.npy``; ``.npz``
        with an array ``dej_um`` (the phantom's ground truth), ``dej`` or ``data`` (or
        a single array); a TIFF or any image :func:`skinoct.io.read_image` reads as
        ``'yx'``. Depths in µm from the top of the volume, NaN where unknown.
    shape_yx : (int, int), optional
        The volume's en-face shape; a surface of another shape is refused.
    path : str or Path, optional
        The file the value came from, named in errors (for a number or an array).

    Returns
    -------
    float or ndarray of float64, (y, x)

    Raises
    ------
    InputError
        A depth that is negative or not finite; a file that is missing, unreadable or
        not a 2-D array; a surface of the wrong shape or without any finite depth.

    Examples
    --------
    >>> read_dej("62.5")
    62.5
    """
    number = _as_number(value)
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise InputError(f"dej must be a depth ≥ 0 µm, got {value!r}", path=path)
        return number
    if isinstance(value, np.ndarray):
        surface, where = np.asarray(value, dtype=np.float64), path
    else:
        where = Path(value)
        if not where.is_file():
            raise InputError(
                "DEJ file not found: neither a number of µm nor an existing file", path=where
            )
        surface = _read_surface(where)
    surface = np.squeeze(surface)
    if surface.ndim != 2:
        raise InputError(
            f"a DEJ surface is a 2-D (y, x) array, got shape {surface.shape}", path=where
        )
    if shape_yx is not None and surface.shape != tuple(shape_yx):
        raise InputError(
            f"DEJ surface has shape {surface.shape}; the volume's en-face shape is "
            f"{tuple(shape_yx)} (y, x)",
            path=where,
        )
    if not np.isfinite(surface).any():
        raise InputError("DEJ surface holds no finite depth", path=where)
    return surface


def _as_number(value) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _read_surface(path: Path) -> np.ndarray:
    from skinoct.io import check_regular_file

    check_regular_file(path)  # a FIFO or device would block or never end
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                names = [n for n in NPZ_NAMES if n in npz.files]
                if not names and len(npz.files) == 1:
                    names = list(npz.files)
                if not names:
                    raise InputError(f".npz needs an array 'dej_um', found {npz.files}", path=path)
                data = npz[names[0]]
        elif suffix == ".npy":
            from skinoct.io import read_npy

            data = read_npy(path, mmap=False)  # header checked before any allocation
        elif suffix in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            from skinoct.io import read_image

            data = read_image(path, axes="yx").data
        return np.asarray(data, dtype=np.float64)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read DEJ surface: {str(exc).splitlines()[0]}", path=path) from exc
