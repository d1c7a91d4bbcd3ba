"""``--axes``: how commands that segment or analyse read their images.

Without ``--axes`` a section is read as depth × lateral (``zx``) and a volume as
depth × y × x (``zyx``), and :func:`skinoct.io.check_orientation` refuses an image
whose air/gel is not above the tissue (a section saved as x × z, a volume saved as
x, y, z) before any model runs. ``--axes`` names the order in which the file stores
the axes (``xz``, ``xyz``, …; the data are transposed to depth first) and skips the
check, so a user can always override it, including with ``--axes zx``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from skinoct.errors import InputError

__all__ = ["axes_option", "read_section_checked", "read_volume_checked"]

_HELP = {
    2: "Order in which the files store the axes, e.g. 'xz' for lateral × depth; skips the "
    "orientation check (default: 'zx', depth first, checked).",
    3: "Order in which the file stores the axes, e.g. 'xyz'; skips the orientation check "
    "(default: 'zyx', depth first, checked).",
}


def axes_option(ndim: int):
    """The ``--axes`` option for commands reading sections (2) or volumes (3)."""
    return typer.Option(None, "--axes", help=_HELP[ndim])


def _validate(axes: str | None, canonical: str) -> str | None:
    if axes is None:
        return None
    text = axes.strip().lower()
    if sorted(text) != sorted(canonical) or len(set(text)) != len(text):
        raise InputError(f"--axes must order the letters of {canonical!r} (e.g. "
                         f"{canonical[::-1]!r}), got {axes!r}")  # fmt: skip
    return text


def read_section_checked(path: Path, *, spacing_um=None, axes: str | None = None):
    """Read a vertical section; check its orientation unless ``axes`` was given."""
    from skinoct.io import read_image

    given = _validate(axes, "zx")
    return read_image(path, spacing_um=spacing_um, axes=given or "zx",
                      check_orientation=given is None)  # fmt: skip


def read_volume_checked(path: Path, *, spacing_um=None, axes: str | None = None, mmap=True):
    """Read a volume; check its orientation unless ``axes`` was given."""
    from skinoct.io import read_volume

    given = _validate(axes, "zyx")
    return read_volume(path, spacing_um=spacing_um, axes=given or "zyx", mmap=mmap,
                       check_orientation=given is None)  # fmt: skip
