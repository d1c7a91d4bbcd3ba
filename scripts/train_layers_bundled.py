"""Train the bundled skin-layer model on phantom sections (synthetic data only).

Renders a phantom dataset (48 subjects x 5 sections: four body sites, noise 0.3-2.5,
tilts, blur, stripes, varied pixel spacing, DEJ disruptions in a quarter of the
sections), runs 5-fold cross-validation grouped by subject, retrains on all sections
and copies model.safetensors, model.json and cv_report.json into OUT (default: the
package's bundled-model folder).

    # GPU, as used for the shipped model (325 s on one H100):
    python scripts/train_layers_bundled.py --device cuda --jobs 16 --workers 12
    # CPU, 2 cores, no cross-validation, shorter schedule (about 21 min of 2 idle
    # cores; held-out Dice 0.963, see docs/layers.md):
    python scripts/train_layers_bundled.py --device cpu --folds 0 --epochs 6 --jobs 2

The model's manifest says it was trained on synthetic phantoms and must be retrained
or fine-tuned on real annotated data before use on real images.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from layers_phantom_data import DatasetSpec, write_phantom_dataset

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "skinoct" / "models" / "bundled" / "layers"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED, help="where the model goes")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("out/layers_bundled"),
        help="dataset + training folder (resumable)",
    )
    parser.add_argument("--subjects", type=int, default=48)
    parser.add_argument("--sections", type=int, default=5, help="sections per subject")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patches-per-section", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="processes rendering phantoms")
    args = parser.parse_args(argv)

    from skinoct.layers import SYNTHETIC_NOTICE, TrainConfig, train_layers

    spec = DatasetSpec(n_subjects=args.subjects, sections_per_subject=args.sections, seed=args.seed)
    data = args.work / "data"
    t0 = time.perf_counter()
    if not (data / "index.csv").is_file():
        write_phantom_dataset(data, spec, jobs=args.jobs)
    print(f"phantom dataset: {data} ({time.perf_counter() - t0:.0f} s)", flush=True)

    config = TrainConfig(
        folds=args.folds,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        lr=args.lr,
        patches_per_section=args.patches_per_section,
        num_workers=args.workers,
    )

    def log(event: dict) -> None:
        kind = event["event"]
        if kind == "epoch":
            where = "final" if event["fold"] is None else f"fold {event['fold']}"
            extra = ""
            if "val_loss" in event:
                dice = " ".join(f"{d:.3f}" for d in event["val_dice"])
                extra = f" val {event['val_loss']:.4f} dice {dice}"
            print(
                f"{where} epoch {event['epoch']} loss {event['train_loss']:.4f}{extra} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        elif kind in ("fold_done", "fold_skipped", "final_start", "data"):
            print(event, flush=True)

    model_dir = args.work / "model"
    result = train_layers(
        data,
        model_dir,
        config,
        provenance={
            "synthetic_data": True,
            "data": {
                "generator": "scripts/layers_phantom_data.py",
                "subjects": spec.n_subjects,
                "sections_per_subject": spec.sections_per_subject,
                "seed": spec.seed,
                "noise_range": list(spec.noise_range),
                "disruption_fraction": spec.disruption_fraction,
            },
            "command": "python scripts/train_layers_bundled.py " + " ".join(argv or sys.argv[1:]),
        },
        notice=SYNTHETIC_NOTICE,
        callback=log,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json", "cv_report.json"):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, args.out / name)
    summary = result.cv_report.get("summary", {})
    print("CV:", {k: round(v["mean"], 4) for k, v in summary.items()})
    print(f"done in {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
