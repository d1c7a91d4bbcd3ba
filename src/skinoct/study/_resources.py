"""Resource tracking of an analysis: time, CPU and peak memory per stage; memory release.

Used by :func:`skinoct.study.analyze_volume`: ``Stages`` times each stage (and samples
the resident memory every 10 ms with ``track_memory``); :func:`release_pages` drops the
touched pages of a memory-mapped volume and :func:`trim_heap` returns freed heap to the
OS, so that the resident memory of a streamed analysis does not grow with the volume.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Stages", "release_pages", "rss_mb", "trim_heap"]


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Stages:
    """Wall and CPU time per stage and, with ``track_memory``, the peak RSS during each."""

    track_memory: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        peak = [rss_mb()] if self.track_memory else None
        stop = threading.Event()
        sampler = None
        if self.track_memory:

            def sample() -> None:
                while not stop.wait(0.01):
                    peak[0] = max(peak[0], rss_mb())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu
            if sampler is not None:
                stop.set()
                sampler.join()
                peak[0] = max(peak[0], rss_mb())
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), peak[0])


def release_pages(data) -> None:
    """Let the OS drop the pages of a memory-mapped volume that this process touched.

    Reading every section of a memory-mapped volume maps the whole file into the
    process; the pages are clean copies of the file, so dropping them costs nothing
    but a re-read from the page cache if they are needed again. Keeps the resident
    memory of a streamed analysis independent of the volume size. No-op for arrays
    that are not memory-mapped (or where ``madvise`` is unavailable).
    """
    import mmap

    base = data
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if base is not None and advice is not None:
        try:
            base.madvise(advice)
        except (OSError, ValueError):
            pass


def trim_heap() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``; no-op elsewhere).

    Inference frees hundreds of MB of small tensors; glibc keeps them in its arenas,
    where they still count as resident memory for the later stages.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
