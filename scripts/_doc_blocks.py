"""Replace a generated block between ``<!-- BEGIN … -->`` / ``<!-- END … -->`` markers in a doc."""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(path: Path, begin: str, end: str, text: str, *, missing: str = "error") -> bool:
    """Put ``text`` between the markers ``begin`` and ``end`` of ``path`` (markers kept).

    ``missing='error'`` raises SystemExit naming the file when the markers are missing,
    so a script never writes its table nowhere; ``missing='skip'`` leaves such a file
    alone (a script pointed at another document). Returns whether the file was written.
    """
    doc = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        if missing == "skip":
            return False
        raise SystemExit(f"{path}: markers {begin!r} … {end!r} not found")
    from skinoct.io import write_text  # atomic: an interrupted run leaves the old doc

    write_text(path, pattern.sub(lambda _m: f"{begin}\n{text}\n{end}", doc))
    return True
