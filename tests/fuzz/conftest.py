"""Fixtures of the fuzz suite; the machinery and how to run longer are in ``_fuzzing.py``."""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _fuzzing import TALLY


@pytest.fixture(scope="module", autouse=True)
def _fuzz_tallies():
    # Tracing starts in the first guarded call and stops with the module, so it never
    # slows fixtures or the tests of other folders.
    yield
    tracemalloc.stop()
    if not TALLY:
        return
    report = dict(sorted(TALLY.items()))  # cumulative over the modules run so far
    print("\nfuzz tallies:", json.dumps(report))
    target = os.environ.get("SKINOCT_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
