"""Replace a generated block between ``<!-- BEGIN … -->`` / ``<!-- END … -->`` markers in a doc."""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(path: Path, begin: str, end: str, text: str) -> None:
    """Put ``text`` between the markers ``begin`` and ``end`` of ``path`` (markers kept).

    Raises SystemExit naming the file when the markers are missing, so a script never
    writes its table nowhere.
    """
    doc = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path}: markers {begin!r} … {end!r} not found")
    path.write_text(pattern.sub(lambda _m: f"{begin}\n{text}\n{end}", doc), encoding="utf-8")
