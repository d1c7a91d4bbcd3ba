"""Dermal-matrix grading throughput: torch eager vs onnxruntime, side by side.

Measures tiles per second of MobileNetV3-Small (224 × 224 px, 4-grade head) on the CPU
at a fixed number of threads, for the network with its input normalisation (float tiles
on the 0–255 scale in; the exported ONNX graph contains the normalisation) and for
``predict_tiles`` end to end (uint8 tiles → preprocessing → softmax). Both engines run
in the same process on the same batches, alternating, so drift on a shared machine hits
them alike. Prints a Markdown table for BENCHMARKS.md.

The tiles are phantom en-face tiles (q uniform in [1, 4]), so that the INT8 calibration
and the agreement figures of ``--variants`` see realistic textures.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_matrix.py --threads 2 --batch 64 --repeats 15 \\
        --variants --train-steps 8
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
    parser.add_argument(
        "--variants",
        action="store_true",
        help="Also time two variants skinoct does not ship: torch bfloat16 autocast and "
        "onnxruntime static INT8, with their agreement with float32.",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="Also time the openvino-int8 engine (NNCF, quantised into the cache on first "
        "use) beside float32, and print its agreement check.",
    )
    parser.add_argument(
        "--agree",
        type=int,
        default=0,
        metavar="N",
        help="Also grade N phantom tiles with every engine: accuracy and agreement.",
    )
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=("torch", "onnxruntime", "openvino"),  # 'openvino' includes int8
        help="Time only these engines (default: all), e.g. to keep torch's threads from "
        "competing with the others in the alternation.",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    from skinoct.matrix import (
        export_matrix_onnx,
        load_matrix_model,
        normalize_batch,
        predict_tiles,
        preprocess_tiles,
    )
    from skinoct.models import OnnxRunner

    model = load_matrix_model(args.model)
    size = model.preprocessing.input_size
    tiles, _ = phantom_tiles(args.batch, seed=0, size=size)
    x = preprocess_tiles(tiles, model.preprocessing, normalize=False)  # float 0–255
    normalization = model.preprocessing.normalization
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_matrix_onnx(model, Path(tmp) / "m.onnx")
        runner = OnnxRunner(onnx_path, threads=args.threads)
        net = model.network.eval()
        x_cl = x.contiguous(memory_format=torch.channels_last)
        xn = x.numpy()

        def torch_net():
            with torch.inference_mode():
                return net(normalize_batch(x_cl, normalization)).float().numpy()

        def torch_bf16():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return net(normalize_batch(x_cl, normalization)).float().numpy()

        def onnx_net():
            return runner(xn)

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
        variants = {}
        if openvino_available():  # optional engine: pip install 'skinoct[openvino]'
            from skinoct.models import OpenVinoRunner

            openvino = OpenVinoRunner(onnx_path, threads=args.threads)
            cases["OpenVINO (bfloat16 hint), network (+ normalisation)"] = lambda: openvino(xn)
            cases["OpenVINO (bfloat16 hint), predict_tiles"] = lambda: predict_tiles(
                tiles, model, engine="openvino", batch_size=args.batch, threads=args.threads
            )
            variants["OpenVINO bfloat16"] = lambda: openvino(xn)
        if args.int8 and openvino_available():
            from skinoct.matrix import quantize_int8
            from skinoct.phantom import grading_tiles

            check = quantize_int8(model, grading_tiles)  # NNCF int8, cached after the first
            print(f"openvino-int8 agreement check (phantom tiles): {check}")
            ov_int8 = OpenVinoRunner(model.int8().path, threads=args.threads, precision="f32")

            def int8_e2e():  # predict_tiles' exported-engine path with the int8 runner
                xx = preprocess_tiles(tiles, model.preprocessing, normalize=False)
                torch.softmax(torch.from_numpy(ov_int8(xx.numpy())), dim=1).numpy()

            cases["OpenVINO int8 (NNCF), network (+ normalisation)"] = lambda: ov_int8(xn)
            cases["OpenVINO int8 (NNCF), predict_tiles path"] = int8_e2e
            variants["OpenVINO int8 (NNCF)"] = lambda: ov_int8(xn)
        if args.variants:
            int8_path = quantize_int8(onnx_path, Path(tmp) / "m_int8.onnx", model, size=size)
            int8 = OnnxRunner(int8_path, threads=args.threads)
            cases["torch eager bfloat16 autocast, network (not shipped)"] = torch_bf16
            cases["onnxruntime INT8 (QDQ Conv), network (not shipped)"] = lambda: int8(xn)
            variants["torch bfloat16"] = torch_bf16
            variants["onnxruntime INT8"] = lambda: int8(xn)
        if args.engines:
            cases = {
                k: v
                for k, v in cases.items()
                if k.split(" ")[0].rstrip(",").lower() in args.engines
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
                # let the engine's worker threads stop spinning before the next one runs
                time.sleep(0.2)
        logits_torch = torch_net()
        logits_onnx = runner(xn)
        variant_logits = {name: fn() for name, fn in variants.items()}

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
    for name, logits in variant_logits.items():
        agree = (logits.argmax(1) == logits_onnx.argmax(1)).mean()
        print(
            f"{name} vs onnxruntime float32 on these {args.batch} phantom tiles: same grade "
            f"for {agree:.3f}, max |Δ Σp·g| = {max_grade_shift(logits, logits_onnx):.3f}"
        )
    if args.agree:
        agreement(model, args.agree, threads=args.threads)
    if args.train_steps:
        train_rate(model, args.train_steps)
    return 0


def phantom_tiles(n: int, *, seed: int, size: int):
    """``n`` phantom en-face tiles (uint8, q uniform in [1, 4]) at the model's input size,
    and their true qualities q."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from skinoct.io import to_uint8
    from skinoct.phantom import render_enface

    rng = np.random.default_rng(seed)
    qualities = rng.uniform(1, 4, n)
    stacks = [
        to_uint8(render_enface(float(q), seed=int(rng.integers(2**31))).stack) for q in qualities
    ]
    x = torch.from_numpy(np.stack(stacks)).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).numpy(), qualities


def max_grade_shift(logits_a, logits_b) -> float:
    """Largest change of the expected grade Σ p·g between two sets of logits."""
    import numpy as np
    from scipy.special import softmax

    grades = np.arange(1, logits_a.shape[1] + 1)
    shift = softmax(logits_a, axis=1) @ grades - softmax(logits_b, axis=1) @ grades
    return float(np.abs(shift).max())


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_int8(fp32_path, out_path, model, *, size: int):
    """Static INT8 quantisation with onnxruntime: QDQ, convolutions only, per-channel
    weights (u8 activations × s8 weights, the VNNI path), min–max ranges from 64 other
    phantom tiles. Quantising the hard-swish / squeeze-excitation Mul and Add as well was
    tried too: less accurate (6 % of grades changed) and no faster."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from skinoct.matrix import preprocess_tiles

    calibration = preprocess_tiles(
        phantom_tiles(64, seed=1, size=size)[0], model.preprocessing, normalize=False
    ).numpy()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration[i : i + 16] for i in range(0, 64, 16))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    prepared = Path(out_path).with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared))
    quantize_static(
        str(prepared),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path


def train_rate(model, steps: int) -> None:
    """Images per second of one training step as ``train_matrix`` runs it on the CPU
    (channels-last), beside the default contiguous layout, alternating."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from skinoct.matrix import MatrixNet, augment_tiles, normalize_batch, set_phase

    size = model.preprocessing.input_size
    rng = np.random.default_rng(0)
    tiles = torch.from_numpy(rng.integers(0, 256, (128, 3, size, size), dtype=np.uint8))
    layouts = {"channels-last (train_matrix)": torch.channels_last}
    layouts["contiguous (torch default)"] = torch.contiguous_format
    steps_of = {}
    for name, layout in layouts.items():
        net = MatrixNet().to(memory_format=layout)
        set_phase(net, "all")
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net=net, optimizer=optimizer, layout=layout):
            pick = rng.integers(0, len(tiles), 32)
            x = augment_tiles(tiles[pick].float(), rng.integers(0, 9, 32))
            x = normalize_batch(x, "tile").contiguous(memory_format=layout)
            loss = F.cross_entropy(net(x), torch.randint(0, 4, (32,)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step()
        step()
        steps_of[name] = step
    times = {name: [] for name in steps_of}
    for _ in range(steps):
        for name, step in steps_of.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    print()
    for name, values in times.items():
        rate = 32 / statistics.median(values)
        print(f"training, {name}: {rate:.0f} images/s (batch 32, {size} px, median of {steps})")


def agreement(model, n: int, *, threads: int) -> None:
    """Grades of ``n`` phantom tiles by every installed engine: accuracy against the
    phantom's true grade and agreement with onnxruntime float32."""
    import numpy as np

    from skinoct.matrix import predict_tiles
    from skinoct.phantom import grade_of

    tiles, qualities = phantom_tiles(n, seed=7, size=model.preprocessing.input_size)
    truth = grade_of(qualities)
    engines = ["onnx", "torch"] + (["openvino"] if openvino_available() else [])
    grades = {}
    print(f"\n{n} phantom en-face tiles (q uniform in [1, 4], seed 7):")
    for engine in engines:
        p = predict_tiles(tiles, model, engine=engine, threads=threads)
        grades[engine] = np.asarray(model.classes)[p.argmax(axis=1)]
        same = (grades[engine] == grades["onnx"]).mean()
        print(
            f"  {engine:>8}: accuracy {(grades[engine] == truth).mean():.4f}, "
            f"same grade as onnxruntime float32 {same:.4f}"
        )


if __name__ == "__main__":
    sys.exit(main())
