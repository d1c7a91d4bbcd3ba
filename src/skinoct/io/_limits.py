"""Limits that keep the readers from being turned against the user.

A reader computes the size of what a file *declares* (its header's shape and pixel
type) and refuses it before allocating anything when it is larger than
:attr:`ReadLimits.max_bytes`; it refuses FIFOs, devices and sockets without opening
them (a FIFO would block forever); and it refuses a pixel spacing outside a plausible
range for skin microscopy, which otherwise surfaces much later as a huge allocation or
as thicknesses of 0 or 10¹³ µm.

The defaults admit any LC-OCT acquisition with a wide margin (a 1.2 × 0.5 × 0.5 mm
float32 volume at 1 µm is 1.2 GB) and can be changed for the process with
:func:`set_limits` or the environment variables ``SKINOCT_MAX_IMAGE_BYTES`` (bytes, a
``K``/``M``/``G`` suffix allowed, powers of 1024) and ``SKINOCT_SPACING_RANGE_UM``
(``"MIN,MAX"``). Explicit :func:`set_limits` values win over the environment.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from skinoct.errors import InputError

__all__ = [
    "ReadLimits",
    "check_declared_size",
    "check_regular_file",
    "check_spacing_range",
    "get_limits",
    "read_limits",
    "set_limits",
]

MAX_BYTES_ENV = "SKINOCT_MAX_IMAGE_BYTES"
SPACING_RANGE_ENV = "SKINOCT_SPACING_RANGE_UM"
_HOW_TO_CHANGE = "skinoct.io.set_limits(...) or the environment variable"


@dataclass(frozen=True)
class ReadLimits:
    """What the readers accept.

    Parameters
    ----------
    max_bytes : int
        Largest decoded image a reader may allocate, from the shape and pixel type the
        file declares (default 8 GiB).
    min_spacing_um, max_spacing_um : float
        Plausible pixel spacing range in µm (default 0.01–1,000 µm).
    """

    max_bytes: int = 8 * 1024**3
    min_spacing_um: float = 0.01
    max_spacing_um: float = 1000.0

    def __post_init__(self) -> None:
        if not (isinstance(self.max_bytes, int) and self.max_bytes > 0):
            raise ValueError(f"max_bytes must be a positive integer, got {self.max_bytes!r}")
        lo, hi = float(self.min_spacing_um), float(self.max_spacing_um)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise ValueError(
                f"need 0 < min_spacing_um < max_spacing_um (finite), got {lo!r}, {hi!r}"
            )


_overrides: dict[str, float | int] = {}


def get_limits() -> ReadLimits:
    """The limits in force: defaults, then the environment, then :func:`set_limits`.

    Raises
    ------
    InputError
        If an environment variable holds something that is not a valid limit.
    """
    values: dict[str, float | int] = {}
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw:
        values["max_bytes"] = _parse_bytes(raw)
    raw = os.environ.get(SPACING_RANGE_ENV, "").strip()
    if raw:
        values.update(_parse_range(raw))
    values.update(_overrides)
    try:
        return replace(ReadLimits(), **values)
    except ValueError as exc:
        raise InputError(f"invalid reader limits: {exc}") from None


def set_limits(
    *,
    max_bytes: int | None = None,
    min_spacing_um: float | None = None,
    max_spacing_um: float | None = None,
) -> ReadLimits:
    """Change the reader limits for this process; return the previous limits.

    Parameters
    ----------
    max_bytes : int, optional
        Largest decoded image in bytes.
    min_spacing_um, max_spacing_um : float, optional
        Plausible pixel spacing range in µm.

    Raises
    ------
    ValueError
        If the resulting limits are not valid (non-positive size, empty range).

    Examples
    --------
    >>> import skinoct.io
    >>> previous = skinoct.io.set_limits(max_bytes=32 * 1024**3)  # 32 GiB volumes
    >>> _ = skinoct.io.set_limits(max_bytes=previous.max_bytes)
    """
    previous = get_limits()
    new = {k: v for k, v in (("max_bytes", max_bytes), ("min_spacing_um", min_spacing_um),
                             ("max_spacing_um", max_spacing_um)) if v is not None}  # fmt: skip
    replace(previous, **new)  # validates before anything changes
    _overrides.update(new)
    return previous


@contextmanager
def read_limits(**limits) -> Iterator[ReadLimits]:
    """Context manager: :func:`set_limits` inside the block, restored afterwards."""
    saved = dict(_overrides)
    set_limits(**limits)
    try:
        yield get_limits()
    finally:
        _overrides.clear()
        _overrides.update(saved)


def check_regular_file(path: Path, *, folder_ok: bool = False) -> bool:
    """Refuse what is not a regular file, without opening it; True for a folder.

    Raises
    ------
    InputError
        Missing path, FIFO, device, socket, or a folder where a file is expected.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot access: {exc.strerror or exc}", path=path) from None
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISDIR(mode):
        if folder_ok:
            return True
        raise InputError("is a folder, expected a file", path=path)
    kind = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )  # fmt: skip
    raise InputError(f"is {kind}; only regular files are read", path=path)


def check_declared_size(shape, itemsize: int, *, path: Path | None, what: str = "image") -> int:
    """Return the byte size of ``shape`` × ``itemsize``; refuse it above the limit.

    Computed with Python integers, so a forged header cannot overflow it.

    Raises
    ------
    InputError
        A negative dimension or a size above :attr:`ReadLimits.max_bytes`.
    """
    dims = [int(n) for n in shape]
    if any(n < 0 for n in dims):
        raise InputError(f"{what} declares a negative size {tuple(dims)}", path=path)
    nbytes = math.prod(dims) * int(itemsize)
    limit = get_limits().max_bytes
    if nbytes > limit:
        raise InputError(
            f"{what} declares shape {tuple(dims)} ({_human(nbytes)}), above the reader limit "
            f"of {_human(limit)}; raise it with {_HOW_TO_CHANGE} {MAX_BYTES_ENV} if this "
            "is really the data",
            path=path,
        )
    return nbytes


def check_spacing_range(spacing_um, *, path: Path | None, source: str) -> None:
    """Refuse a spacing outside the plausible range of :func:`get_limits`.

    Raises
    ------
    InputError
        Naming the file, the spacing, where it came from and how to widen the range.
    """
    limits = get_limits()
    lo, hi = limits.min_spacing_um, limits.max_spacing_um
    bad = [v for v in spacing_um if not lo <= v <= hi]
    if bad:
        where = {"metadata": "in the file's metadata", "override": "given"}.get(source, source)
        shown = ", ".join(f"{v:g}" for v in spacing_um)
        raise InputError(
            f"spacing ({shown}) µm {where} is outside the plausible range {lo:g}–{hi:g} µm "
            f"per pixel (check the unit; widen with {_HOW_TO_CHANGE} {SPACING_RANGE_ENV})",
            path=path,
        )


def _human(nbytes: int) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def _parse_bytes(text: str) -> int:
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    body = text.upper().removesuffix("IB").removesuffix("B").strip()
    factor = scale.get(body[-1:], 1)
    if factor != 1:
        body = body[:-1]
    try:
        value = float(body) * factor
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 1):
        raise InputError(f"{MAX_BYTES_ENV} must be a size in bytes (e.g. 8G), got {text!r}")
    return int(value)


def _parse_range(text: str) -> dict[str, float]:
    parts = text.replace(";", ",").split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"{SPACING_RANGE_ENV} must be 'MIN,MAX' in µm, got {text!r}") from None
    return {"min_spacing_um": lo, "max_spacing_um": hi}

