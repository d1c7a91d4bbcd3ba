"""cProfile of the segmentation stage of ``skinoct analyze`` on a slab of the default volume.

Renders ``--sections`` sections of the default phantom volume (300 × N × 1200 µm at
1 µm, seed 0), runs ``segment_volume`` once to warm up, then once under cProfile and
prints the wall time and the table sorted by ``--sort`` (the files in
``benchmarks/profiles/`` are its output).

Usage::

    PYTHONPATH=src OMP_NUM_THREADS=2 python benchmarks/profile_segmentation.py > profile.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=64, help="sections (µm along y)")
    parser.add_argument("--engine", default="onnx", choices=("torch", "onnx"))
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    parser.add_argument("--lines", type=int, default=25, help="rows of the table")
    args = parser.parse_args()

    from skinoct.layers import load_layers_model, segment_volume
    from skinoct.phantom import VolumeParams, render_volume

    vol = render_volume(VolumeParams(size_um=(300.0, float(args.sections), 1200.0)), seed=0)
    model = load_layers_model(None)
    segment_volume(vol.volume[:, :8], model, spacing_um=vol.spacing_um, engine=args.engine)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    segment_volume(vol.volume, model, spacing_um=vol.spacing_um, engine=args.engine)
    profile.disable()
    wall = time.perf_counter() - start
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.lines)
    print(f"# segment_volume of {args.sections} sections (300 × 1200 µm), engine {args.engine}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {cpu_name()}; "
          f"{wall:.2f} s under the profiler")  # fmt: skip
    print(out.getvalue())


if __name__ == "__main__":
    main()
