"""Morphometry of the 500 × 1200 µm field: a baseline commit and this tree side by side.

``skinoct analyze`` measures the three boundary surfaces of a volume. Before issue 12
the surfaces were turned into a label volume (``labels_from_surfaces``) and measured by
``measure_volume``, which extracted them again; now ``surfaces_on_grid`` +
``measure_surfaces`` measure them directly. This script times both on the same
seeded surfaces (DEJ with 60 × 70 µm papillae of ±10 µm and 0.5 µm noise; a gap),
alternating a baseline tree (``git archive BASE src``) and this tree in fresh
processes, and prints the median of each and whether their metrics agree.

Usage::

    python benchmarks/bench_morphometry.py                   # baseline 7611ea9, 5 rounds
    python benchmarks/bench_morphometry.py --base main --rounds 3 --size 500 1200

The machine may be shared: the load average is printed with the figures; compare the
two medians of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = (
    "epidermis_thickness_um",
    "stratum_corneum_thickness_um",
    "dej_undulation_index",
    "dej_surface_area_ratio",
    "dej_rms_amplitude_um",
    "dej_peak_to_valley_um",
    "dermal_papillae",
)


def surfaces(ny: int, nx: int, seed: int = 0):
    """Seeded boundary surfaces (µm) like those of a segmented 300 × ny × nx µm volume."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    surface = 40 + 3 * np.sin(x / 90) + rng.normal(0, 0.3, (ny, nx))
    sc = surface + 14 + rng.normal(0, 0.3, (ny, nx))
    dej = surface + 70 + 10 * np.sin(2 * np.pi * x / 60) * np.sin(2 * np.pi * y / 70)
    dej += rng.normal(0, 0.5, (ny, nx))
    dej[ny // 5 : ny // 5 + 20, nx // 4 : nx // 4 + 30] = np.nan  # a gap in the DEJ
    return surface, sc, dej


def worker(ny: int, nx: int) -> dict:
    """Time one morphometry of the field with whatever ``skinoct`` is on the path."""
    import numpy as np
    import scipy.ndimage  # (imports outside the timing)
    import scipy.signal  # noqa: F401
    import skimage.morphology  # noqa: F401

    from skinoct.morphometry import measure_volume

    surface, sc, dej = surfaces(ny, nx)
    dz, spacing, n_z = 1.0, (1.0, 1.0, 1.0), 300
    start = time.perf_counter()
    try:  # this tree: no label volume
        from skinoct.morphometry import crop_depth, measure_surfaces, surfaces_on_grid

        raw = surfaces_on_grid(surface, sc, dej, dz_um=dz, n_z=crop_depth(dej, dz, n_z))
        metrics = measure_surfaces(
            raw["surface"], raw["sc_junction"], raw["dej"], spacing_um=spacing
        )
        path = "surfaces_on_grid + measure_surfaces"
    except ImportError:  # the baseline: label volume from the surfaces, measured again
        from skinoct.study.surfaces import crop_depth, labels_from_surfaces

        labels = labels_from_surfaces(surface, sc, dej, dz, crop_depth(dej, dz, n_z))
        metrics = measure_volume(labels, spacing)
        path = "labels_from_surfaces + measure_volume"
    seconds = time.perf_counter() - start
    nested = metrics.to_dict()
    return {
        "path": path,
        "seconds": seconds,
        "metrics": {k: nested[k] for k in KEYS},
        "dej_mean": float(np.nanmean(metrics.dej_surface_um)),
    }


def run_once(src: Path, ny: int, nx: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", "--size", str(ny), str(nx)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="7611ea9", help="baseline commit (default 7611ea9)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=(500, 1200), help="ny nx (µm)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ny, nx = args.size
    if args.worker:
        print(json.dumps(worker(ny, nx)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {"baseline " + args.base: Path(tmp) / "src", "this tree": ROOT / "src"}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, src in trees.items():  # alternating: both see the same load
                runs[name].append(run_once(src, ny, nx))
    load = os.getloadavg()
    print(f"morphometry of a {ny} × {nx} µm field at 1 µm, {args.rounds} rounds, 1 thread")
    print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    for name, results in runs.items():
        times = [r["seconds"] for r in results]
        print(f"  {name:<20} {results[0]['path']:<40} median {statistics.median(times):6.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f})")  # fmt: skip
    (a, b) = (runs[name][0] for name in trees)
    same = json.dumps(a["metrics"], sort_keys=True) == json.dumps(b["metrics"], sort_keys=True)
    print(f"  metrics identical: {same}")
    if not same:
        for key in KEYS:
            print(f"    {key}: {a['metrics'][key]}  vs  {b['metrics'][key]}")


if __name__ == "__main__":
    main()
