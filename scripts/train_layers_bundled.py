"""Train the bundled skin-layer model on phantom sections of every appearance family.

Renders ``--per-family`` sections of each appearance family of skinoct.phantom
(standard, dark-sc-low-contrast, smooth-blurred-coarse, artefact-heavy: layer
levels and textures, PSF, attenuation, artefacts, noise and pixel sizes 0.5-5 um
randomised far beyond real LC-OCT, the SynthSeg idea), trains with the MONAI
intensity augmentation of skinoct.layers._augment, and writes model.safetensors,
model.json and cv_report.json into OUT (default: the package's bundled-model folder).

    # CPU, 2 shared cores, as run for docs/layers.md (warm start from the previous
    # phantom-only model, no cross-validation, 36 steps of 16 patches; 847 s wall with
    # the process getting ~0.25 of a core; far too short, see docs/layers.md):
    python scripts/train_layers_bundled.py --device cpu --folds 0 --epochs 1 \
        --per-family 48 --sections 4 --patches-per-section 3 --batch-size 16 --lr 1e-3 \
        --init src/skinoct/models/bundled/layers --work out/bundled_work --out out/bundled_new
    # Install it only once scripts/layers_families.py shows it beats the shipped model on
    # the held-out families, after calibrating its DEJ-uncertainty threshold
    # (scripts/calibrate_layers.py out/bundled_new; --install refuses an uncalibrated
    # model): --model new=out/bundled_new --install new.
    # GPU, with 5-fold CV and more data:
    python scripts/train_layers_bundled.py --device cuda --jobs 16 --workers 12 \
        --per-family 120 --epochs 16

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

from layers_phantom_data import (
    DatasetSpec,
    chosen_families,
    combine_datasets,
    family_seed,
    write_family_datasets,
    write_phantom_dataset,
)

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
    parser.add_argument("--families", default="all", help="comma-separated family names")
    parser.add_argument("--per-family", type=int, default=48, help="sections per family")
    parser.add_argument(
        "--plain",
        type=int,
        default=0,
        help="also this many sections of the round-1 plain look (render_section's own "
        "noise model, noise 0.3-2.5; scripts/layers_phantom_data.py), so the plain look "
        "of the held-out evaluation stays in the training distribution",
    )
    parser.add_argument(
        "--palm-per-family", type=int, default=0,
        help="also this many palm sections (a thick SC) per family, from disjoint "
        "seeds: a thick SC in a randomised look is where the model lacks column context "
        "(docs/layers.md, 'Body sites')",
    )  # fmt: skip
    parser.add_argument("--sections", type=int, default=4, help="sections per subject")
    parser.add_argument("--init", type=Path, default=None, help="model folder to start from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument(
        "--patches-per-section", type=int, default=None, help="default: the recipe's"
    )
    parser.add_argument(
        "--time-budget", type=float, default=None, help="wall-clock budget in minutes"
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--layer-intensity", type=float, default=0.0,
        help="probability of a random gain and offset per layer (SynthSeg-like)",
    )  # fmt: skip
    parser.add_argument(
        "--resolution", type=float, default=0.0,
        help="probability of a wide blur and of simulated coarse pixels per patch",
    )  # fmt: skip
    parser.add_argument("--levels", type=int, default=None, choices=range(2, 9),
                        metavar="{2..8}", help="U-Net resolution levels (default: the "
                        "recipe's or --init's)")  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="processes rendering phantoms")
    parser.add_argument(
        "--indeterminate-um",
        type=float,
        default=0.0,
        help="mark the DEJ band of simulated disruptions as indeterminate (255) with this "
        "half-width at the disruption's centre; training blends the target across it "
        "(22 = skinoct.phantom.DISRUPTED_BAND_UM; 0: the geometric DEJ everywhere)",
    )
    parser.add_argument("--disruption-fraction", type=float, default=0.2,
                        help="fraction of sections with a simulated DEJ disruption "
                        "(families; the plain look gets 0.05 more)")  # fmt: skip
    args = parser.parse_args(argv)

    from skinoct.layers import SYNTHETIC_NOTICE, TrainConfig, train_layers

    families = chosen_families(parser, args.families)
    t0 = time.perf_counter()
    parts = write_family_datasets(
        args.work / "families", families, n_per_family=args.per_family,
        sections_per_subject=args.sections, seed=args.seed, jobs=args.jobs,
        indeterminate_um=args.indeterminate_um, disruption_fraction=args.disruption_fraction,
    )  # fmt: skip
    if args.palm_per_family:
        # Seeds of the palm parts: those of ``seed + 50`` (subjects disjoint from the
        # families' own and from the held-out families).
        palm = write_family_datasets(
            args.work / "palm", families, n_per_family=args.palm_per_family,
            sections_per_subject=args.sections, seed=args.seed + 50, jobs=args.jobs,
            indeterminate_um=args.indeterminate_um,
            disruption_fraction=args.disruption_fraction, site="palm",
        )  # fmt: skip
        parts = {**parts, **{f"palm-{f}": p for f, p in palm.items()}}
    if args.plain:
        plain_fraction = min(1.0, args.disruption_fraction + 0.05)  # 0.25 by default
        spec = DatasetSpec(n_subjects=-(-args.plain // args.sections),
                           sections_per_subject=args.sections, seed=1000 + args.seed,
                           indeterminate_um=args.indeterminate_um,
                           disruption_fraction=plain_fraction)  # fmt: skip
        plain = args.work / "plain"
        if not (plain / "index.csv").is_file():
            write_phantom_dataset(plain, spec, jobs=args.jobs)
        parts = {**parts, "plain": plain}
    data = combine_datasets(parts, args.work / "data")
    print(f"phantom dataset: {data} ({time.perf_counter() - t0:.0f} s)", flush=True)
    init = None
    if args.init is not None:  # a private copy: OUT may be the folder it comes from
        init = args.work / "init_model"
        init.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "model.json"):
            shutil.copy2(args.init / name, init / name)

    config = TrainConfig(
        folds=args.folds,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        lr=args.lr,
        patches_per_section=args.patches_per_section,
        layer_intensity=args.layer_intensity,
        resolution=args.resolution,
        levels=args.levels,
        num_workers=args.workers,
        time_budget_s=None if args.time_budget is None else args.time_budget * 60.0,
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
        init=init,
        provenance={
            "synthetic_data": True,
            "phantom_only": True,
            "data": {
                "generator": "skinoct.phantom.write_section_dataset(family=...) via "
                "scripts/layers_phantom_data.py",
                "families": families,
                "sections_per_family": args.per_family,
                "palm_sections_per_family": args.palm_per_family,
                "plain_look_sections": args.plain,
                "n_sections": (args.per_family + args.palm_per_family) * len(families)
                + args.plain,
                "sections_per_subject": args.sections,
                "seed": args.seed,
                "family_seeds": [family_seed(f, args.seed) for f in families],
                "disruption_fraction": args.disruption_fraction,
                "indeterminate_dej_um": args.indeterminate_um,
            },
            "bundled_recipe": {
                "augmentation": "skinoct.layers._augment.training_transforms (MONAI "
                "intensity transforms + speckle, flips, small rotations, zoom)",
                "init": None if args.init is None else str(args.init.name),
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
    if result.model is None:
        print("stopped by the time budget before a model was made; run again to continue")
        return 1
    summary = result.cv_report.get("summary", {})
    print("CV:", {k: round(v["mean"], 4) for k, v in summary.items()})
    print(f"done in {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
