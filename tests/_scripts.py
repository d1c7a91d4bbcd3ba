"""Import a script of ``scripts/`` (not a package) as a module, for its tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def import_script(name: str):
    """``scripts/<name>.py`` as a module; ``scripts/`` is on ``sys.path`` only while it
    (and the helpers it imports at the top, e.g. ``_doc_blocks``) is imported."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))
