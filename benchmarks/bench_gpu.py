"""The GPU path: seconds per phantom volume and throughput per stage on CUDA.

On a machine where torch sees a CUDA GPU this times, on a rendered phantom volume
(default 300 × 500 × 1200 µm at 1 µm), the stages that run on the GPU with the bundled
models — layer segmentation of every vertical section (``segment_sections``,
``device='cuda'``; float32 and float16 autocast, with the Dice of the fp16 masks against
fp32) and dermal tile grading (``predict_tiles`` on the model moved to CUDA; float32
and float16 autocast, with the grade agreement) — and prints sections/s, tiles/s and
an estimate of seconds per volume (segmentation + grading of 3 tiles × 70 depths).
Without CUDA it says so and exits 0.

Usage::

    python benchmarks/bench_gpu.py                  # default volume
    python benchmarks/bench_gpu.py --size 160 420 420 --batch 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _timed(fn, repeats: int):
    import torch

    fn()  # warm-up (cuDNN autotuning, allocations)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, nargs=3, default=(300.0, 500.0, 1200.0))
    parser.add_argument("--batch", type=int, default=256, help="tiles per forward pass")
    parser.add_argument("--section-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA GPU on this machine; nothing measured.")
        return 0
    import numpy as np

    from skinoct.layers import load_layers_model, segment_sections
    from skinoct.matrix import load_matrix_model, predict_tiles
    from skinoct.phantom import VolumeParams, grading_tiles, render_volume

    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    vol = render_volume(VolumeParams(size_um=tuple(args.size)), seed=0)
    data = np.asarray(vol.volume)
    spacing = (vol.spacing_um[0], vol.spacing_um[2])
    sections = np.ascontiguousarray(np.moveaxis(data, 1, 0))  # (y, z, x): vertical sections
    layers = load_layers_model()

    def segment(amp: bool):
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            return segment_sections(
                sections, layers, spacing_um=spacing, device="cuda",
                batch_size=args.section_batch,
            )  # fmt: skip

    seg_s, seg32 = _timed(lambda: segment(False), args.repeats)
    seg16_s, seg16 = _timed(lambda: segment(True), args.repeats)
    dice = _dice(seg32.labels, seg16.labels)
    grader = load_matrix_model(device="cuda")
    tiles, _ = grading_tiles(args.batch, seed=7, size=grader.preprocessing.input_size)

    def grade(amp: bool):
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            return predict_tiles(tiles, grader, engine="torch", batch_size=args.batch)

    tile_s, p32 = _timed(lambda: grade(False), args.repeats)
    tile16_s, p16 = _timed(lambda: grade(True), args.repeats)
    same = float((p32.argmax(1) == p16.argmax(1)).mean())
    n_tiles = 3 * 70
    print(f"volume {data.shape} (zyx), {len(sections)} sections, median of {args.repeats}")
    print("| stage | fp32 | fp16 autocast | fp16 vs fp32 |")
    print("| --- | ---: | ---: | --- |")
    print(f"| segmentation, sections/s | {len(sections) / seg_s:.0f} | "
          f"{len(sections) / seg16_s:.0f} | mean Dice {dice:.4f} |")  # fmt: skip
    print(f"| grading, tiles/s | {args.batch / tile_s:.0f} | {args.batch / tile16_s:.0f} | "
          f"same grade {same:.4f} |")  # fmt: skip
    per_volume = seg16_s + n_tiles * tile16_s / args.batch
    print(f"\nseconds per volume (segmentation + {n_tiles} tiles, fp16): {per_volume:.2f} s; "
          "CPU stages (reading, morphometry, tiles, outputs) not included")  # fmt: skip
    return 0


def _dice(a, b) -> float:
    """Mean Dice over the labels of two label images (Dice 1945)."""
    import numpy as np

    values = []
    for label in np.union1d(np.unique(a), np.unique(b)):
        x, y = a == label, b == label
        values.append(2 * np.logical_and(x, y).sum() / max(1, x.sum() + y.sum()))
    return float(np.mean(values))


if __name__ == "__main__":
    sys.exit(main())
