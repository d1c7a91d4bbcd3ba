"""Calibrate a layer model's DEJ-uncertainty threshold and store it in its manifest.

    python scripts/calibrate_layers.py                       # the bundled model, phantoms
    python scripts/calibrate_layers.py MODEL_DIR --data DATASET_DIR
    python scripts/calibrate_layers.py MODEL_DIR --n 60 --quantile 0.95 --dry-run
    python scripts/calibrate_layers.py --band-um 15 --min-segment-um 60   # other flag settings

Sections: with ``--data``, the images of a dataset in the ``layers train`` layout
(``images/``; use sections without DEJ disruptions, e.g. the validation sections);
otherwise ``--n`` clean phantom sections of varied anatomy and noise (the sampler of
scripts/evaluate_uncertainty.py, seeds 7000 + i, as the docs' figures). The result of
:func:`skinoct.layers.calibrate_uncertainty` is written under the top-level
``uncertainty`` key of ``MODEL_DIR/model.json`` (weights and their SHA-256 untouched;
the model is loaded back as a check). Run it again whenever the weights change.

The DEJ band (``--band-um``, µm either side of the DEJ) and the shortest flagged
stretch (``--min-segment-um``) are stored with the threshold and used with it by every
writer; the defaults keep the model's current ones. Compare others on development
sections, not on the docs' test sections, with
``scripts/evaluate_uncertainty.py --bands 5 10 15 20 --min-segments 20 40 60 --test-seed 9000``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=None,
                        help="model directory (default: the bundled model)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=None, help="dataset with images/")
    parser.add_argument("--n", type=int, default=200, help="phantom sections (without --data)")
    parser.add_argument("--quantile", type=float, default=0.9)
    parser.add_argument("--engine", default="onnx", choices=("torch", "onnx"))
    parser.add_argument(
        "--band-um", type=float, default=None,
        help="DEJ band half-height, µm (default: the model's current band)",
    )  # fmt: skip
    parser.add_argument(
        "--min-segment-um", type=float, default=None,
        help="shortest flagged DEJ stretch, µm (default: the model's current one)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)

    from skinoct.layers import (
        calibrate_uncertainty,
        load_layers_model,
        write_uncertainty_calibration,
    )
    from skinoct.models import bundled_model_dir

    model_dir = args.model or bundled_model_dir("layers")
    model = load_layers_model(model_dir)
    if args.data is not None:
        from skinoct.io import read_image
        from skinoct.layers import discover_dataset

        records = discover_dataset(args.data).records
        sections = (read_image(r.image, axes="zx") for r in records)
        computed_on = f"{len(records)} sections of {args.data.name}"
    else:
        from evaluate_uncertainty import render

        sections = ((s.image, s.spacing_um) for s in
                    (render(7000 + i, disrupted=False) for i in range(args.n)))  # fmt: skip
        computed_on = f"{args.n} clean phantom sections (evaluate_uncertainty.py, seeds 7000+)"
    calibration = calibrate_uncertainty(
        model, sections, quantile=args.quantile, engine=args.engine, band_um=args.band_um,
        min_segment_um=args.min_segment_um, computed_on=computed_on,
    )  # fmt: skip
    print(json.dumps(calibration, indent=2))
    if not args.dry_run:
        path = write_uncertainty_calibration(model_dir, calibration)
        print(f"wrote the 'uncertainty' key of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
