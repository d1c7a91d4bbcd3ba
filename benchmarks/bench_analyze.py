"""Wall time and peak memory of ``skinoct analyze`` on a phantom volume, by stage.

Renders a phantom LC-OCT volume (default 300 × 500 × 1200 µm at 1 µm, the seed's
3-D field: a 300 × 500 × 1200 uint16 volume, 360 MB), writes it as an uncompressed
OME-TIFF, then analyses it in a *fresh* process (so the peak resident memory is that
of the analysis alone) with the bundled models and prints, per stage (read,
segmentation, morphometry, tiles, grading, outputs), the wall time and the peak RSS
sampled every 10 ms, plus the process's overall peak (``ru_maxrss``).

Usage::

    .venv/bin/python benchmarks/bench_analyze.py                      # 300×500×1200, step 1
    .venv/bin/python benchmarks/bench_analyze.py --section-step 4
    .venv/bin/python benchmarks/bench_analyze.py --size 160 420 420 --threads 2
    # a given volume, a baseline commit and this tree side by side (alternating, medians)
    .venv/bin/python benchmarks/bench_analyze.py --volume vol0001.ome.tif --base dd6403e --rounds 3

The rendered volume is cached in ``--workdir`` (default ``/tmp/skinoct-bench``).
Peak RSS includes the memory-mapped volume pages the analysis touched and the
libraries (torch, MONAI): it is what the operating system has to provide.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def render(path: Path, size: tuple[float, float, float], seed: int) -> None:
    import numpy as np

    from skinoct.io import write_image
    from skinoct.phantom import VolumeParams, render_volume

    start = time.perf_counter()
    vol = render_volume(VolumeParams(size_um=size), seed=seed)
    data = vol.volume
    hi = float(np.percentile(data[:: max(1, data.shape[0] // 32)], 99.99))
    scaled = np.empty(data.shape, np.uint16)
    for k in range(0, data.shape[0], 16):  # in slabs: no second float copy
        scaled[k : k + 16] = np.clip(data[k : k + 16] / hi * 60000, 0, 65535).astype(np.uint16)
    del data
    write_image(path, scaled, spacing_um=vol.spacing_um, axes="zyx")
    print(
        f"rendered {scaled.shape} uint16 in {time.perf_counter() - start:.1f} s -> {path}",
        file=sys.stderr,
    )


def analyze(path: Path, out: Path, section_step: int, engine: str, matrix_model=None) -> dict:
    import resource

    from skinoct.study.analyze import analyze_volume

    start = time.perf_counter()
    result = analyze_volume(
        path,
        out_dir=out,
        section_step=section_step,
        engine=engine,
        track_memory=True,
        matrix_model=matrix_model,
    )
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 2),
        "timings_s": result["timings_s"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "score": result["score"],
        "shape": result["input"]["shape"],
        "dtype": result["input"]["dtype"],
        "sections_segmented": result["dej"]["sections_segmented"],
        "flags": result["flags"],
    }


def compare(args, base: list[str], volume: Path, env: dict) -> None:
    """``--base``: the baseline commit's ``src/`` and this tree alternately, ``--rounds``
    fresh processes each (after one untimed run each that fills the tree's own model
    export cache); medians per stage, total wall time and process peak RSS."""
    import statistics
    import tempfile

    from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", args.base, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {f"baseline {args.base}": Path(tmp) / "src", "this tree": root / "src"}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        # Each tree exports the models into a cache of its own (a tree must not run the
        # other's export), in one untimed run first.
        envs = {
            name: {**env, "PYTHONPATH": str(src), "SKINOCT_CACHE_DIR": f"{tmp}/cache{i}"}
            for i, (name, src) in enumerate(trees.items())
        }
        for name in trees:
            subprocess.run([*base, "--_analyze", str(volume)], check=True, env=envs[name],
                           capture_output=True)  # fmt: skip
        load = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for name in trees:  # alternating: both see the same load
                proc = subprocess.run(
                    [*base, "--_analyze", str(volume)],
                    check=True,
                    env=envs[name],
                    capture_output=True,
                    text=True,
                )
                runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                load.append(os.getloadavg()[0])
    first = next(iter(runs.values()))[0]
    print(
        f"`skinoct analyze` of {volume.name} {first['shape']}, section step "
        f"{args.section_step}, engine {args.engine}, {args.threads} threads; {cpu_name()}, "
        f"{os.cpu_count()} CPUs; {args.rounds} rounds alternating, medians (min–max); "
        f"load average {min(load):.2f}–{max(load):.2f}"
    )
    names = list(runs)
    print("| stage | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))

    def cell(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    for stage in first["timings_s"]:
        cells = [cell([r["timings_s"][stage] for r in runs[n]], ".1f") for n in names]
        print(f"| {stage} (s) | " + " | ".join(cells) + " |")
    print("| **total (s)** | " + " | ".join(
        cell([r["total_s"] for r in runs[n]], ".1f") for n in names) + " |")  # fmt: skip
    print("| **process peak RSS (MB)** | " + " | ".join(
        cell([r["ru_maxrss_mb"] for r in runs[n]], ".0f") for n in names) + " |")  # fmt: skip
    scores = [" / ".join(sorted({f"{r['score']:.4f}" for r in runs[n]})) for n in names]
    print("| volume score | " + " | ".join(scores) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        type=float,
        nargs=3,
        default=(300.0, 500.0, 1200.0),
        metavar=("Z", "Y", "X"),
        help="volume size in µm (1 µm pixels)",
    )
    parser.add_argument("--section-step", type=int, default=1)
    parser.add_argument("--engine", default="torch", choices=("torch", "onnx", "auto"))
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skinoct-bench"))
    parser.add_argument("--json", action="store_true", help="print the raw JSON only")
    parser.add_argument("--matrix-model", type=Path, help="grading model (default: bundled)")
    parser.add_argument("--volume", type=Path, help="analyse this volume file (no rendering)")
    parser.add_argument("--base", help="also time this commit's src/ (side by side, alternating)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per tree (medians)")
    parser.add_argument("--_render", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_analyze", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._render:
        render(args._render, tuple(args.size), args.seed)
        return
    if args._analyze:
        import torch

        torch.set_num_threads(args.threads)
        out = args.workdir / f"out-step{args.section_step}-{args.engine}"
        record = analyze(args._analyze, out, args.section_step, args.engine, args.matrix_model)
        print(json.dumps(record))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    name = "x".join(f"{s:g}" for s in args.size)
    volume = args.volume or args.workdir / f"phantom-{name}-seed{args.seed}.ome.tif"
    env = {
        **os.environ,
        **{
            v: str(args.threads)
            for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
    }
    base = [
        sys.executable,
        __file__,
        "--size",
        *map(str, args.size),
        "--seed",
        str(args.seed),
        "--workdir",
        str(args.workdir),
        "--threads",
        str(args.threads),
        "--section-step",
        str(args.section_step),
        "--engine",
        args.engine,
        *(["--matrix-model", str(args.matrix_model)] if args.matrix_model else []),
    ]
    if not volume.exists():
        subprocess.run([*base, "--_render", str(volume)], check=True, env=env)
    if args.base:
        compare(args, base, volume, env)
        return
    load_before = os.getloadavg()[0]
    proc = subprocess.run(
        [*base, "--_analyze", str(volume)], check=True, env=env, capture_output=True, text=True
    )
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    record.update(
        section_step=args.section_step,
        engine=args.engine,
        threads=args.threads,
        cpu=platform.processor() or platform.machine(),
        cpus=os.cpu_count(),
    )
    if args.json:
        print(json.dumps(record))
        return
    print(
        f"volume {record['shape']} {record.get('dtype', '?')}, section step {args.section_step} "
        f"({record['sections_segmented']} sections), engine {args.engine}, "
        f"{args.threads} threads, {record['cpus']} CPUs"
    )
    print(f"load average {record['load_average'][0]} before, {record['load_average'][1]} after")
    print("| stage | wall time (s) | CPU time (s) | peak RSS during stage (MB) |")
    print("| --- | ---: | ---: | ---: |")
    for stage, seconds in record["timings_s"].items():
        cpu = record["cpu_s"].get(stage, float("nan"))
        peak = record["peak_rss_mb"].get(stage, float("nan"))
        print(f"| {stage} | {seconds:.1f} | {cpu:.1f} | {peak:.0f} |")
    total, cpu, peak = record["total_s"], sum(record["cpu_s"].values()), record["ru_maxrss_mb"]
    print(f"| **total** | **{total:.1f}** | **{cpu:.1f}** | **{peak:.0f}** (process peak) |")
    print(f"score {record['score']:.3f}; flags: {record['flags']}")


if __name__ == "__main__":
    main()
