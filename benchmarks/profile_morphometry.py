"""cProfile of the morphometry stage of ``skinoct analyze`` on the 500 × 1200 µm field.

The steps of ``analyze``'s morphometry on the seeded surfaces of
``bench_morphometry.py`` (DEJ with 60 × 70 µm papillae, noise, a gap): outlier removal
of the three surfaces, ``surfaces_on_grid`` and ``measure_surfaces``; prints the
cumulative-time table (the files in ``benchmarks/profiles/`` are its output).

Usage::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/profile_morphometry.py > profile.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time

import bench_morphometry  # benchmarks/ is on sys.path when run as a script
from _machine import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(500, 1200), help="ny nx (µm)")
    parser.add_argument("--lines", type=int, default=30, help="rows of the table")
    args = parser.parse_args()
    import scipy.ndimage  # (imports outside the profile)
    import scipy.signal  # noqa: F401
    import skimage.morphology  # noqa: F401

    from skinoct.morphometry import (
        crop_depth,
        measure_surfaces,
        remove_outliers,
        surfaces_on_grid,
    )

    surfaces = bench_morphometry.surfaces(*args.size)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    surface, sc, dej = (remove_outliers(s, (1.0, 1.0))[0] for s in surfaces)
    raw = surfaces_on_grid(surface, sc, dej, dz_um=1.0, n_z=crop_depth(dej, 1.0, 300))
    measure_surfaces(raw["surface"], raw["sc_junction"], raw["dej"], spacing_um=(1.0, 1.0, 1.0))
    profile.disable()
    seconds = time.perf_counter() - start
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(args.lines)
    print(f"# {args.size[0]} × {args.size[1]} µm field, {cpu_name()}, "
          f"load average {os.getloadavg()[0]:.2f}; {seconds:.2f} s under the profiler")  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(text.getvalue().replace(root + "/", ""))


if __name__ == "__main__":
    main()
