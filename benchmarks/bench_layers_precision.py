"""The layer U-Net in bfloat16 (OpenVINO) against float32 (onnxruntime), on phantom sections.

Issue 14 allows reduced precision for the U-Net only "at unchanged masks (Dice ≥ 0.995
against float32 on phantom sections)". This measures it: ``--per-family`` sections of
every appearance family (the leave-one-family-out test sets of
``scripts/layers_families.py``, rendered once into ``--work``) are segmented by
:func:`skinoct.layers.segment_section` (ordered decoding) with the bundled model twice,
with engine ``'onnx'`` (float32) and with OpenVINO's CPU plugin under its bfloat16 hint.
Per family it prints the Dice of the bfloat16 mask against the float32 one (mean and
minimum over sections, per layer), the share of columns whose DEJ row moved, and the
largest DEJ move in µm; then the time of ``segment_section`` per section, the two
engines alternated section after section, medians. Where the CPU has no native
bfloat16 (no AVX-512 BF16 or AMX), OpenVINO computes in float32 and the masks agree
trivially; the script says which.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_layers_precision.py \\
        --work /tmp/skinoct-precision --per-family 24
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("stratum_corneum", "epidermis", "dermis")


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports bfloat16 among its optimisation capabilities."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compare(model, records, *, threads: int, rounds: int):
    from skinoct.io import read_image
    from skinoct.layers import boundary_depths, dice_per_layer, segment_section

    bf16 = model._exported().runner("openvino", threads=threads, precision="bf16")
    float_runner = model.runner
    images = [read_image(r.image, axes="zx") for r in records]

    def run(image, precision):
        if precision == "bf16":  # the bf16 runner where segment_section asks for OpenVINO
            model.runner = lambda engine, threads=None: bf16
        try:
            engine = "openvino" if precision == "bf16" else "onnx"
            return segment_section(image.data, model, spacing_um=image.spacing_um,
                                   engine=engine, threads=threads).labels  # fmt: skip
        finally:
            model.__dict__.pop("runner", None)

    rows = []
    for image in images:
        f32, b16 = run(image, "f32"), run(image, "bf16")
        dice = dice_per_layer(b16, f32, label_values=(1, 2, 3))
        dz = image.spacing_um[0]
        a, b = (np.nan_to_num(boundary_depths(m, dz_um=dz)["dej"], nan=-dz) for m in (f32, b16))
        rows.append({**dice, "dej_moved": float((a != b).mean()),
                     "dej_max_um": float(np.abs(a - b).max())})  # fmt: skip
    assert model.runner == float_runner
    times = {"f32": [], "bf16": []}
    for _ in range(rounds):
        for image in images:
            for precision in times:
                start = time.perf_counter()
                run(image, precision)
                times[precision].append(time.perf_counter() - start)
    return rows, {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/skinoct-precision"))
    parser.add_argument("--per-family", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="timing passes over the sections")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "scripts"))
    from layers_phantom_data import write_family_datasets

    from skinoct.layers import discover_dataset, load_layers_model
    from skinoct.phantom import FAMILIES

    parts = write_family_datasets(args.work, list(FAMILIES), n_per_family=args.per_family,
                                  sections_per_subject=4, seed=2)  # fmt: skip
    model = load_layers_model()
    print(f"machine: {cpu_name()}; threads {args.threads}; OpenVINO native bf16: "
          f"{native_bf16()}; model {model.weights_sha256[:12]}…\n")  # fmt: skip
    print("| family | sections | Dice bf16 vs f32, mean (min) SC | epidermis | dermis "
          "| DEJ columns moved | largest DEJ move (µm) | ms/section f32 | ms/section bf16 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for family, folder in parts.items():
        records = discover_dataset(folder).records
        rows, medians = compare(model, records, threads=args.threads, rounds=args.rounds)
        cells = [f"{np.mean([r[k] for r in rows]):.4f} ({min(r[k] for r in rows):.4f})"
                 for k in LAYERS]  # fmt: skip
        moved = np.mean([r["dej_moved"] for r in rows])
        print(f"| {family} | {len(rows)} | " + " | ".join(cells)
              + f" | {100 * moved:.2f} % | {max(r['dej_max_um'] for r in rows):.1f} "
              f"| {1000 * medians['f32']:.0f} | {1000 * medians['bf16']:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
