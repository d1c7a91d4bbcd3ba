"""Atomic file writing: a temp file in the target folder, renamed into place."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "json_safe", "remove_stale_temp_files", "write_json", "write_text"]

_TEMP_GLOB = ".*.tmp*"  # mkstemp(prefix=".<stem>.", suffix=".tmp<suffix>") below


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    An interrupted or failed write leaves ``path`` as it was (absent or old), never
    half-written. The temp name keeps the suffix so that writers which look at the
    extension (tifffile, Pillow, matplotlib) pick the right format.

    Examples
    --------
    >>> with atomic_path(tmp_dir / "a.txt") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("done")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".ome.tif") else path.suffix
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates owner-only files; give results the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    try:
        try:
            yield tmp
            # again: some writers (safetensors) replace the file and create it owner-only
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename is not None or exc.errno is None:
                raise
            # a full disk (ENOSPC) raised by write()/close() names no file: name it
            raise OSError(exc.errno, f"{exc.strerror} (writing)", str(path)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files that killed writers left under ``folder``; return them.

    :func:`atomic_path` removes its temp file on any exception, but not when the
    process is killed (``kill -9``, out of memory, power loss). Call this when a
    resumable job starts again on its folder, before any writer of its own runs.
    """
    folder = Path(folder)
    removed = []
    for path in sorted(folder.rglob(_TEMP_GLOB)) if folder.is_dir() else []:
        if path.is_file() and ".tmp" in path.name:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NaN written as ``null``)."""
    return write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def json_safe(obj):
    """Convert NumPy scalars/arrays and non-finite floats to plain JSON values."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
