"""Dermal-matrix grading throughput: torch eager vs onnxruntime, side by side.

Measures tiles per second of MobileNetV3-Small (224 × 224 px, 4-grade head) on the CPU
at a fixed number of threads, for the network with its input normalisation (float tiles
on the 0–255 scale in; the exported ONNX graph contains the normalisation) and for
``predict_tiles`` end to end (uint8 tiles → preprocessing → softmax). Both engines run
in the same process on the same batches, alternating, so drift on a shared machine hits
them alike. Prints a Markdown table for BENCHMARKS.md.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_matrix.py --threads 2 --batch 64 --repeats 15 \\
        --train-steps 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="Timed batches per engine.")
    parser.add_argument("--model", default=None, help="Model directory (default: bundled).")
    parser.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="Also time this many training steps (batch 32, ×9 augmentation) "
        "and estimate the bundled model's CPU training time.",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    from skinoct.matrix import export_matrix_onnx, load_matrix_model, predict_tiles
    from skinoct.matrix._model import normalize_batch, preprocess_tiles
    from skinoct.models import OnnxRunner

    model = load_matrix_model(args.model)
    size = model.preprocessing.input_size
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (args.batch, 3, size, size), dtype=np.uint8)
    x = preprocess_tiles(tiles, model.preprocessing, normalize=False)  # float 0–255
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_matrix_onnx(model, Path(tmp) / "m.onnx")
        runner = OnnxRunner(onnx_path, threads=args.threads)
        model._onnx[args.threads] = runner
        net = model.network.eval()
        xn = x.numpy()

        def torch_net():
            with torch.inference_mode():
                net(normalize_batch(x, model.preprocessing.normalization))

        def onnx_net():
            runner(xn)

        def torch_e2e():
            predict_tiles(tiles, model, engine="torch", batch_size=args.batch)

        def onnx_e2e():
            predict_tiles(tiles, model, engine="onnx", batch_size=args.batch, threads=args.threads)

        cases = {
            "torch eager, network (+ normalisation)": torch_net,
            "onnxruntime, network (+ normalisation)": onnx_net,
            "torch eager, predict_tiles": torch_e2e,
            "onnxruntime, predict_tiles": onnx_e2e,
        }
        times = {name: [] for name in cases}
        for fn in cases.values():  # warm-up
            fn()
            fn()
        for _ in range(args.repeats):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        with torch.inference_mode():
            logits_torch = net(normalize_batch(x, model.preprocessing.normalization)).numpy()
        logits_onnx = runner(xn)

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs visible; "
        f"threads {args.threads}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}"
    )
    print(
        f"model: {model.path} ({model.manifest.get('architecture', {}).get('head')} head), "
        f"input {size} px, batch {args.batch}, median of {args.repeats} batches\n"
    )
    print("| engine, scope | ms / batch (median) | tiles / s | tiles / s (best batch) |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {1e3 * median:.0f} | {args.batch / median:.0f} "
            f"| {args.batch / min(values):.0f} |"
        )
    diff = np.abs(logits_torch - logits_onnx).max()
    print(
        f"\nmax |logit_torch − logit_onnx| = {diff:.1e} (logits span "
        f"{logits_torch.min():.1f} … {logits_torch.max():.1f})"
    )
    if args.train_steps:
        train_rate(model, args.train_steps)
    return 0


def train_rate(model, steps: int) -> None:
    """Images per second of one training step as ``train_matrix`` runs it on the CPU."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from skinoct.matrix import MatrixNet, augment_tiles, set_phase
    from skinoct.matrix._model import normalize_batch

    size = model.preprocessing.input_size
    net = MatrixNet()
    set_phase(net, "all")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    tiles = torch.from_numpy(rng.integers(0, 256, (128, 3, size, size), dtype=np.uint8))
    net.train()

    def step():
        pick = rng.integers(0, len(tiles), 32)
        x = augment_tiles(tiles[pick].float(), rng.integers(0, 9, 32))
        loss = F.cross_entropy(net(normalize_batch(x, "tile")), torch.randint(0, 4, (32,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rate = 32 / statistics.median(times)
    seen = model.manifest.get("training", {}).get("images_seen")
    print(f"\ntraining: {rate:.0f} images/s (batch 32, {size} px, median of {steps} steps)")
    if seen:
        print(
            f"bundled model: {seen:,} training images → about {seen / rate / 60:.0f} min "
            "of training steps at this rate (plus validation and loading)"
        )


if __name__ == "__main__":
    sys.exit(main())
