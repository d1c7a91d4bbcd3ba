"""OpenVINO trials for issue 14 that were not shipped, timed side by side.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_openvino_trials.py --passes 2

1. Grading network (bundled, uint8 tiles converted in the graph, bfloat16 hint, one
   stream: ``mode='latency'``) at batch sizes 16–256: tiles per second, median of the
   batches.
2. ``predict_tiles`` end to end at batch 64 (uint8 tiles to probabilities) with the
   ``'latency'`` runner (one request of 64 on one stream of all threads, shipped until
   2026-12-07) against the shipped ``'throughput'`` runner (requests of 16 on
   OpenVINO's streams at once).
3. The 7-level layer U-Net's export, batches of 4 × 1 × 320 × 640: onnxruntime float32
   against OpenVINO float32 and bfloat16 (ms per batch), and the pixel share on which
   the bfloat16 argmax equals onnxruntime's (random input).

Within each trial the variants are timed in turn, one call each per round (drift on a
shared machine hits them alike); each figure is the median over the rounds after a
warm-up. Run it on an idle machine and quote the machine (printed first). Needs
``openvino``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def _alternate(fns: dict, rounds: int) -> dict:
    """Median seconds per call of each function, timed in turn round after round."""
    for fn in fns.values():
        fn()  # warm-up at this shape
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def grading_batches(model, threads: int, rng) -> list[str]:
    from skinoct.models import OpenVinoRunner

    runner = OpenVinoRunner(model.onnx_path(), threads=threads, input_type="u8")
    # 512 tiles per call at every batch size, so that each call weighs the same
    tiles = rng.integers(0, 256, (512, 3, 224, 224), dtype=np.uint8)
    batches = (16, 32, 64, 128, 256)

    def chunked(batch):
        return lambda: [runner(tiles[i : i + batch]) for i in range(0, len(tiles), batch)]

    medians = _alternate({b: chunked(b) for b in batches}, 7)
    return [f"| grading, batch {b} (uint8 in, bf16) | {512 / medians[b]:.0f} tiles/s |"
            for b in batches]  # fmt: skip


def grading_modes(model, threads: int, rng) -> list[str]:
    from skinoct.matrix import predict_tiles
    from skinoct.models import OpenVinoRunner

    tiles = rng.integers(0, 256, (64, 3, 224, 224), dtype=np.uint8)
    shipped = model.openvino_runner(threads=threads, input_type="u8")
    latency = OpenVinoRunner(model.onnx_path(), threads=threads, input_type="u8")

    def with_runner(runner):
        def run():
            model.openvino_runner = lambda **_: runner  # this instance only
            try:
                return predict_tiles(tiles, model, engine="openvino", batch_size=64)
            finally:
                del model.openvino_runner

        return run

    runs = {"latency": with_runner(latency), "throughput": with_runner(shipped)}
    same = np.array_equal(runs["latency"](), runs["throughput"]())
    medians = _alternate(runs, 21)
    return [
        f"| predict_tiles, batch 64, 'latency' (1 request, {latency.streams} stream) "
        f"| {64 / medians['latency']:.0f} tiles/s |",
        f"| predict_tiles, batch 64, 'throughput' (requests of {shipped.request_batch}, "
        f"{shipped.streams} streams; shipped) | {64 / medians['throughput']:.0f} tiles/s |",
        f"| same probabilities in both modes | {same} |",
    ]


def layers_precision(threads: int, rng) -> list[str]:
    from skinoct.layers import load_layers_model
    from skinoct.models import OpenVinoRunner

    model = load_layers_model()
    onnx = model.runner("onnx", threads=threads)
    x = rng.normal(size=(4, 1, 320, 640)).astype(np.float32)
    runners = {
        "onnxruntime float32": onnx,
        "OpenVINO float32": OpenVinoRunner(onnx.path, threads=threads, precision="f32"),
        "OpenVINO bf16": OpenVinoRunner(onnx.path, threads=threads, precision="bf16"),
    }
    medians = _alternate({name: (lambda r=r: r(x)) for name, r in runners.items()}, 9)
    rows = [f"| layer U-Net, {name} | {1000 * medians[name]:.0f} ms / batch |"
            for name in runners]  # fmt: skip
    agree = (onnx(x).argmax(1) == runners["OpenVINO bf16"](x).argmax(1)).mean()
    rows.append(f"| layer U-Net, bf16 argmax = float32 argmax | {100 * agree:.2f} % of pixels |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=1, help="repeat the whole set")
    args = parser.parse_args(argv)

    from skinoct.matrix import load_matrix_model

    print(f"machine: {cpu_name()}; threads {args.threads}")
    model = load_matrix_model()
    rng = np.random.default_rng(0)
    for k in range(args.passes):
        print(f"\npass {k + 1}\n\n| trial | median |\n| --- | ---: |")
        rows = grading_batches(model, args.threads, rng)
        rows += grading_modes(model, args.threads, rng)
        rows += layers_precision(args.threads, rng)
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
