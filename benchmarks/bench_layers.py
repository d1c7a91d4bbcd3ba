"""Speed of skin-layer segmentation: torch vs onnxruntime (vs OpenVINO), side by side, on the CPU.

Target (issue 4): one 512 × 1200 section at 1 µm in ≤ 0.15 s on 2 cores with the onnx
engine. Each row is the median (and minimum) of ``--repeats`` calls on phantom
sections after a warm-up, with torch and onnxruntime limited to ``--threads``
threads, in the same process and run. Rows:

* ``segment_section``: the whole call (normalisation, resampling to the model's
  1 × 2 µm grid, network, logits back to the input grid, softmax, entropy, labels);
* ``network only``: the UNet on the 512 × 608 model-grid tensor (``predict_logits``);
* ``segment_sections`` (8 per batch): per section, as a volume is processed;
* ``--tta``: both mirror views.

Prints a Markdown table for BENCHMARKS.md.

Usage::

    .venv/bin/python benchmarks/bench_layers.py
    .venv/bin/python benchmarks/bench_layers.py --threads 2 --repeats 20 --model MODEL_DIR
"""

from __future__ import annotations

import argparse

from _machine import cpu_name, median_time  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--model", default=None, help="model directory (default: bundled)")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 1200), metavar=("Z", "X"))
    parser.add_argument(
        "--engines",
        nargs="+",
        default=None,
        help="engines to time (default: torch, onnx and openvino when installed)",
    )
    parser.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        choices=("PASSIVE", "ACTIVE", "unset"),
        help="OMP_WAIT_POLICY for torch's OpenMP threads (set before torch is imported; "
        "'skinoct layers segment' uses PASSIVE unless the variable is set)",
    )
    args = parser.parse_args(argv)
    import os

    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    import numpy as np
    import onnxruntime
    import torch

    from skinoct.layers import (
        grid_shape,
        load_layers_model,
        predict_logits,
        segment_section,
        segment_sections,
    )
    from skinoct.models import openvino_available
    from skinoct.phantom import SectionParams, render_section

    engines = args.engines or ["torch", "onnx"] + (["openvino"] if openvino_available() else [])

    torch.set_num_threads(args.threads)
    model = load_layers_model(args.model)
    nz, nx = args.shape
    params = SectionParams(depth_um=float(nz), width_um=float(nx))
    section = render_section(params, seed=0)
    image, spacing = section.image, section.spacing_um
    stack = np.stack([render_section(params, seed=s).image for s in range(8)])
    gz, gx = grid_shape(image.shape, spacing, model.spacing_um)
    d = model.spec.divisor
    net_in = np.zeros((1, 1, -(-gz // d) * d, -(-gx // d) * d), np.float32)

    rows = []
    for engine in engines:
        kw = {"engine": engine, "threads": args.threads}
        if engine == "torch":
            kw = {"engine": "torch", "device": "cpu"}
        one = median_time(
            lambda kw=kw: segment_section(image, model, spacing_um=spacing, **kw), args.repeats
        )
        net = median_time(
            lambda e=engine: predict_logits(
                model, net_in, engine=e, device="cpu", threads=args.threads
            ),
            args.repeats,
        )
        tta = median_time(
            lambda kw=kw: segment_section(image, model, spacing_um=spacing, tta=True, **kw),
            max(3, args.repeats // 2),
        )
        many = median_time(
            lambda kw=kw: segment_sections(stack, model, spacing_um=spacing, batch_size=8, **kw),
            max(2, args.repeats // 4),
        )
        rows.append((engine, one, net, tta, (many[0] / 8, many[1] / 8)))

    def cell(t):
        return f"{t[0]:.3f} s ({t[1]:.3f})"

    print(
        f"Machine: {cpu_name()}, {args.threads} threads, OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; input {nz} × {nx} px at {spacing} µm, "
        f"network grid {net_in.shape[2]} × {net_in.shape[3]} px at {model.spacing_um} µm; "
        f"median (min) of {args.repeats}.\n"
    )
    print(
        "| engine | `segment_section` | network only | `segment_sections`, per section "
        "(batch 8) | `segment_section --tta` |"
    )
    print("| --- | --- | --- | --- | --- |")
    for engine, one, net, tta, many in rows:
        print(f"| {engine} | {cell(one)} | {cell(net)} | {cell(many)} | {cell(tta)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
