"""onnxruntime's memory arena for the layer U-Net: speed of three policies, and release.

Runs the bundled layer model's ONNX export on batches of 4 sections on the model grid
(4 × 1 × 512 × 608), one intra-op thread, three sessions side by side in blocks of
``--block`` runs that alternate (so load drifts hit every policy alike):

* ``arena``: onnxruntime's default (the arena keeps its largest run's size);
* ``no-arena``: ``SessionOptions.enable_cpu_mem_arena = False``;
* ``shrink-every-run``: the run option ``memory.enable_memory_arena_shrinkage``;

then prints the median seconds per batch and the ratio to ``arena``, and how much
resident memory one small run with shrinkage hands back after a large run (the
"release after a volume" idea of BENCHMARKS.md, not shipped).

    PYTHONPATH=src python benchmarks/bench_onnx_arena.py --blocks 6 --block 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

SHRINK = ("memory.enable_memory_arena_shrinkage", "cpu:0")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks per policy")
    parser.add_argument("--block", type=int, default=3, help="consecutive runs per block")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from skinoct.layers import load_layers_model

    path = str(load_layers_model().onnx_path())
    load_layers_model().onnx_runner()  # exports to the cache if needed

    def session(arena: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = arena
        return ort.InferenceSession(path, sess_options=options,
                                    providers=["CPUExecutionProvider"])  # fmt: skip

    shrink = ort.RunOptions()
    shrink.add_run_config_entry(*SHRINK)
    policies = {
        "arena": (session(True), None),
        "no-arena": (session(False), None),
        "shrink-every-run": (session(True), shrink),
    }
    x = np.random.default_rng(0).random((4, 1, 512, 608), dtype=np.float32)
    times = {name: [] for name in policies}
    for b in range(args.blocks):
        order = list(policies) if b % 2 == 0 else list(reversed(policies))
        for name in order:
            sess, run_options = policies[name]
            feed = {sess.get_inputs()[0].name: x}
            for i in range(args.block):
                t = time.perf_counter()
                sess.run(None, feed, run_options)
                if i:  # the first run of a block re-grows what the other policies left
                    times[name].append(time.perf_counter() - t)
    base = statistics.median(times["arena"])
    print(f"{cpu_name()}; batch 4 x 1 x 512 x 608, 1 thread, {args.blocks} blocks of "
          f"{args.block} runs (first of each block not timed)")  # fmt: skip
    print("| policy | s / batch (median) | ratio to arena |\n| --- | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / base:.2f} |")

    sess, _ = policies["arena"]
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    grown = _rss_mb()
    sess.run(None, {name: np.zeros((1, 1, 32, 32), np.float32)}, shrink)
    print(f"resident memory handed back by one small run with shrinkage after a large run: "
          f"{grown - _rss_mb():.0f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
