"""Fuzz-suite machinery: a bounded hypothesis profile, per-call guards and tallies.

The CI profile runs a fixed, derandomised set of examples so the whole fuzz suite
takes well under 60 s on two cores. A longer, randomised run::

    SKINOCT_FUZZ_EXAMPLES=2000 SKINOCT_FUZZ_REPORT=fuzz.json \\
        python -m pytest -q tests/fuzz

``SKINOCT_FUZZ_EXAMPLES`` sets the examples per test (default: each test's CI count);
``SKINOCT_FUZZ_REPORT`` names a JSON file that receives the tallies (cases tried, how
many ended in a result and how many in an ``InputError``), which are also printed at
the end of the session.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from collections import Counter
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

TALLY: Counter = Counter()
CALL_TIMEOUT_S = 30.0  # a reader that takes longer than this on a tiny file hangs
PEAK_BYTES = 256 * 1024**2  # traced allocations per call, with the 32 MiB reader limit
READER_LIMIT = 32 * 1024**2


def fuzz_settings(ci_examples: int):
    """Hypothesis settings: ``ci_examples`` derandomised, or ``SKINOCT_FUZZ_EXAMPLES``."""
    raw = os.environ.get("SKINOCT_FUZZ_EXAMPLES", "").strip()
    long_run = bool(raw)
    return settings(
        max_examples=int(raw) if long_run else ci_examples,
        deadline=None,
        derandomize=not long_run,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )


class Hang(BaseException):
    """Raised by the alarm: a BaseException so ``except Exception`` cannot swallow it."""


@contextmanager
def guarded(label: str):
    """Fail on a hang (SIGALRM) or an allocation peak above :data:`PEAK_BYTES`."""

    def alarm(signum, frame):
        raise Hang(f"{label}: no answer within {CALL_TIMEOUT_S} s")

    if not tracemalloc.is_tracing():  # started here, after the (import-heavy) fixtures
        tracemalloc.start()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_TIMEOUT_S)
    tracemalloc.reset_peak()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    peak = tracemalloc.get_traced_memory()[1]
    assert peak <= PEAK_BYTES, f"{label}: allocated {peak / 2**20:.0f} MiB"
