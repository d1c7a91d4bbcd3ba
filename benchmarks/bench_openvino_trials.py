"""OpenVINO trials for issue 14 that were not shipped, timed side by side.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_openvino_trials.py --passes 2

1. Grading network (bundled, uint8 tiles converted in the graph, bfloat16 hint) at
   batch sizes 16–256: tiles per second, median of the batches.
2. The same network on one stream of two threads against two streams of one thread
   (an ``AsyncInferQueue`` of two half batches of 64).
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
    runner = model.openvino_runner(threads=threads, input_type="u8")
    # 512 tiles per call at every batch size, so that each call weighs the same
    tiles = rng.integers(0, 256, (512, 3, 224, 224), dtype=np.uint8)
    batches = (16, 32, 64, 128, 256)

    def chunked(batch):
        return lambda: [runner(tiles[i : i + batch]) for i in range(0, len(tiles), batch)]

    medians = _alternate({b: chunked(b) for b in batches}, 7)
    return [f"| grading, batch {b} (uint8 in, bf16) | {512 / medians[b]:.0f} tiles/s |"
            for b in batches]  # fmt: skip


def grading_streams(model, threads: int, rng) -> list[str]:
    import openvino as ov

    tiles = rng.integers(0, 256, (64, 3, 224, 224), dtype=np.uint8)
    one = model.openvino_runner(threads=threads, input_type="u8")
    core = ov.Core()
    graph = core.read_model(str(model.onnx_path()))
    ppp = ov.preprocess.PrePostProcessor(graph)
    ppp.input(0).tensor().set_element_type(ov.Type.u8)
    ppp.input(0).preprocess().convert_element_type(ov.Type.f32)
    config = {"INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": 2,
              "INFERENCE_NUM_THREADS": threads}  # fmt: skip
    queue = ov.AsyncInferQueue(core.compile_model(ppp.build(), "CPU", config), 2)
    halves = np.array_split(tiles, 2)

    def two_streams():
        for i, half in enumerate(halves):
            queue.start_async({0: half}, i)
        queue.wait_all()

    medians = _alternate({"one": lambda: one(tiles), "two": two_streams}, 15)
    return [
        f"| grading, 1 stream × {threads} threads | {64 / medians['one']:.0f} tiles/s |",
        f"| grading, 2 streams (2 half batches) | {64 / medians['two']:.0f} tiles/s |",
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
        rows += grading_streams(model, args.threads, rng)
        rows += layers_precision(args.threads, rng)
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
