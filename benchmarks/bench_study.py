"""Volumes per hour of ``skinoct study run`` for several worker splits, in one run.

Renders a small phantom cohort of default-size volumes once (``skinoct phantom cohort``,
300 × 500 × 1200 µm at 1 µm; not timed), then runs ``skinoct study run --no-report`` on
it in a fresh process and a fresh study folder for each ``--workers`` value, the values
alternating round after round (A B A B …) so that a drift of the machine's speed hits
every value alike. Prints, per value, the worker split the study recorded
(``study.json``: processes × threads), the median wall time, volumes per hour and the
largest peak RSS of a process (the workers'; ``wait4`` of the run), the CPU
seconds one analysis took (all its threads; from the subject records: unlike the wall
time, less moved by other jobs on the machine) and the time of a 36-volume study
extrapolated from the median (36 / volumes per hour).

Usage::

    python benchmarks/bench_study.py --workdir /tmp/skinoct-study --subjects 4 \\
        --workers 1 2 --rounds 2

``--workers 1`` on 2 CPUs is one process with 2 threads, ``--workers 2`` two processes
with 1 thread each, ``auto`` the default rule.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name

GROUPS = ("young", "old")
DEFAULT_SIZE = [300.0, 500.0, 1200.0]  # µm: the default LC-OCT 3-D field


def cohort(workdir: Path, subjects: int, seed: int, size: list[float]) -> Path:
    """The cohort's manifest, rendered once (two groups, ``subjects // 2`` each)."""
    folder = workdir / f"cohort{subjects}_seed{seed}"
    if size != DEFAULT_SIZE:
        folder = folder.with_name(f"{folder.name}_{'x'.join(f'{v:g}' for v in size)}")
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "skinoct", "-q", "phantom", "cohort", "--out", str(folder),
             "--subjects-per-group", str(max(1, subjects // len(GROUPS))),
             "--groups", ",".join(GROUPS), "--seed", str(seed),
             "--size", *(str(v) for v in size)],
            check=True,
        )  # fmt: skip
        print(f"rendered the cohort in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return manifest


def run_once(manifest: Path, out: Path, workers: str, engine: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skinoct", "-q", "study", "run", str(manifest), "--out",
             str(out), "--workers", workers, "--engine", engine, "--no-report"],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        # wait4: the run's own resource use, its worker processes included (ru_maxrss is
        # the largest resident set of any of them)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"study run --workers {workers} failed:\n{log.read_text()}")
    summary = json.loads((out / "study.json").read_text(encoding="utf-8"))
    cpu = []  # CPU seconds of each analysis (all its threads), from the subject records
    for record in (out / "subjects").glob("*.json"):
        result = json.loads(record.read_text(encoding="utf-8")).get("result") or {}
        cpu.append(sum((result.get("cpu_s") or {}).values()))
    return {
        "wall_s": wall,
        "cpu_s_per_volume": statistics.mean(cpu) if cpu else float("nan"),
        "n": summary["n_ok"],
        "plan": summary["workers"],
        "peak_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skinoct-study-bench"))
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size", type=float, nargs=3, default=DEFAULT_SIZE, metavar=("Z", "Y", "X")
    )
    parser.add_argument("--workers", nargs="+", default=["1", "2"])
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    manifest = cohort(args.workdir, args.subjects, args.seed, args.size)
    runs: dict[str, list[dict]] = {w: [] for w in args.workers}
    for r in range(args.rounds):
        for w in args.workers:
            got = run_once(manifest, args.workdir / f"study_w{w}", w, args.engine)
            runs[w].append(got)
            print(f"round {r + 1}, --workers {w}: {got['wall_s']:.1f} s", file=sys.stderr)
    load = os.getloadavg()[0]
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.subjects} volumes of {' × '.join(f'{v:g}' for v in args.size)} µm, "
        f"engine {args.engine}, {args.rounds} round(s); "
        f"load average {load:.1f} after the run"
    )
    print("| --workers | processes × threads | wall s (median; runs) | volumes / h "
          "| 36 volumes (extrapolated) | CPU s per volume | peak RSS of a worker |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for w, got in runs.items():
        walls = [g["wall_s"] for g in got]
        median = statistics.median(walls)
        per_hour = got[0]["n"] * 3600 / median
        plan = got[0]["plan"]
        print(
            f"| {w} | {plan['processes']} × {plan['threads']} | {median:.0f} "
            f"({', '.join(f'{x:.0f}' for x in walls)}) | {per_hour:.0f} "
            f"| {36 / per_hour * 60:.1f} min "
            f"| {statistics.median(g['cpu_s_per_volume'] for g in got):.1f} "
            f"| {max(g['peak_mb'] for g in got):.0f} MB |"
        )


if __name__ == "__main__":
    main()
