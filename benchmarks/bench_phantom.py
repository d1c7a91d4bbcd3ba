"""Speed and peak memory of the phantom simulator against the issue-3 targets.

Targets: a 512 × 1200 section ≤ 0.1 s, a 400 × 400 en-face stack (3 slices)
≤ 0.05 s, a 300 × 500 × 1200 volume ≤ 30 s and ≤ 3 GB peak. Sections and stacks
report the median of ``--repeats`` renders (distinct seeds, after one warm-up that
fills the spectrum caches); the volume is rendered in a fresh process whose peak
resident memory (``ru_maxrss``, including Python and NumPy) is reported. Prints a
Markdown table for BENCHMARKS.md.

Usage::

    .venv/bin/python benchmarks/bench_phantom.py
    .venv/bin/python benchmarks/bench_phantom.py --repeats 20 --volume 300 500 1200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def _median_time(fn, repeats: int) -> tuple[float, float]:
    fn(0)  # warm-up: spectrum caches, imports
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i + 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def _volume_child(size: list[float]) -> None:
    import resource

    from skinoct.phantom import VolumeParams, render_volume

    start = time.perf_counter()
    vol = render_volume(VolumeParams(size_um=tuple(size)), seed=0)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "shape": vol.volume.shape}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--volume", type=float, nargs=3, default=[300.0, 500.0, 1200.0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _volume_child(args.volume)
        return

    from skinoct.phantom import render_enface, render_section

    section = _median_time(lambda s: render_section(seed=s), args.repeats)
    enface = _median_time(lambda s: render_enface(1.0 + (s % 7) / 2, seed=s), args.repeats)
    cmd = [sys.executable, __file__, "--child", "--volume", *map(str, args.volume)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vol = json.loads(out.strip().splitlines()[-1])
    z, y, x = vol["shape"]
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f} at the end.")  # fmt: skip
    print()
    print("| render | size | median (min) | target |")
    print("| --- | --- | --- | --- |")
    print(f"| `render_section` | 512 × 1200 px | {section[0]:.3f} s ({section[1]:.3f} s) "
          "| ≤ 0.1 s |")  # fmt: skip
    print(f"| `render_enface` | 3 × 400 × 400 px | {enface[0]:.3f} s ({enface[1]:.3f} s) "
          "| ≤ 0.05 s |")  # fmt: skip
    print(f"| `render_volume` | {z} × {y} × {x} px | {vol['seconds']:.1f} s, peak RSS "
          f"{vol['peak_bytes'] / 1e9:.2f} GB | ≤ 30 s, ≤ 3 GB |")  # fmt: skip


if __name__ == "__main__":
    main()
