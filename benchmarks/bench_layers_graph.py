"""The bundled layer U-Net in onnxruntime: the graph as built, as exported, and in int8.

Exports the bundled model's network three ways and times them side by side on one batch
of phantom sections on the model grid (``--batch`` × 1 × 224 × 608, the cropped depth of
the default volume), onnxruntime with ``--threads`` intra-op threads and no spinning (as
``segment_volume`` runs it), in ``--rounds`` alternating rounds of ``--runs`` calls:

* ``as built``: ``torch.onnx.export`` of the network itself (MONAI's ``PReLU``);
* ``exported``: :func:`skinoct.models.export_onnx`, which exports
  ``skinoct.models._graph.export_graph`` of it (``LeakyRelu``, fused by onnxruntime);
* ``int8`` (``--int8``): onnxruntime's ``quantize_static`` of ``exported`` (u8
  activations, s8 per-channel weights, QDQ), calibrated on ``--calibration`` other
  phantom sections.

Prints the median ms per section and the share of pixels whose argmax matches
``as built``.

    PYTHONPATH=src python benchmarks/bench_layers_graph.py --int8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def _sections(n: int, seed: int) -> np.ndarray:
    """``n`` phantom sections, normalised and resampled as segment_sections does."""
    import torch
    import torch.nn.functional as F

    from skinoct.layers import load_layers_model
    from skinoct.phantom import VolumeParams, render_volume

    model = load_layers_model(None)
    vol = render_volume(VolumeParams(size_um=(224.0, float(max(n, 10)), 1216.0)), seed=seed)
    stack = np.stack([model.normalize(vol.volume[:, y, :]) for y in range(n)])
    # the model's 1 × 2 µm grid, antialiased as segment_sections resamples; 224 × 608 is
    # a multiple of the U-Net's divisor (16): no padding
    grid = F.interpolate(torch.from_numpy(stack)[:, None], size=(224, 608), mode="bilinear",
                         align_corners=False, antialias=True)  # fmt: skip
    return grid.numpy()


def _export(folder: Path, int8: bool, calibration: np.ndarray) -> dict[str, Path]:
    import torch

    from skinoct.layers import load_layers_model
    from skinoct.models import export_onnx

    model = load_layers_model(None)
    net = model.network("cpu").eval()
    example = torch.zeros((1, 1, 32, 32))
    axes = {0: "batch", 2: "height", 3: "width"}
    paths = {"as built": folder / "built.onnx", "exported": folder / "exported.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(paths["as built"]),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": axes, "logits": axes},
            opset_version=17,
        )
    export_onnx(net, example, paths["exported"], dynamic_axes=axes)
    if int8:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.batches = iter(calibration[i : i + 1] for i in range(len(calibration)))

            def get_next(self):
                batch = next(self.batches, None)
                return None if batch is None else {"input": batch}

        paths["int8"] = folder / "int8.onnx"
        quantize_static(str(paths["exported"]), str(paths["int8"]), Reader(),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)  # fmt: skip
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=4, help="calls per round")
    parser.add_argument("--int8", action="store_true", help="also time static int8")
    parser.add_argument("--calibration", type=int, default=20, help="int8 calibration sections")
    args = parser.parse_args()

    from skinoct.models import OnnxRunner

    x = _sections(args.batch, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        calibration = _sections(args.calibration, seed=2) if args.int8 else x
        paths = _export(Path(tmp), args.int8, calibration)
        runners = {k: OnnxRunner(p, threads=args.threads, spin=False) for k, p in paths.items()}
        ref = runners["as built"](x).argmax(1)
        agree = {k: float((r(x).argmax(1) == ref).mean()) for k, r in runners.items()}
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():  # alternating: drift hits every graph alike
                start = time.perf_counter()
                for _ in range(args.runs):
                    run(x)
                times[name].append((time.perf_counter() - start) / (args.runs * args.batch))
    print(f"layer U-Net, batch {args.batch} × 1 × {x.shape[2]} × {x.shape[3]}, onnxruntime "
          f"{args.threads} threads, no spinning; {cpu_name()}; {args.rounds} rounds × "
          f"{args.runs} runs, medians")  # fmt: skip
    print("| graph | ms / section | argmax = as built |")
    print("| --- | ---: | ---: |")
    for name, values in times.items():
        print(f"| {name} | {1000 * statistics.median(values):.1f} | {agree[name]:.4f} |")


if __name__ == "__main__":
    main()
