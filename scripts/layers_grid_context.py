"""Context against precision, by body site: a coarser model grid or a deeper U-Net.

Fine-tunes one initial layer model on one dataset in several arms, each with the same
wall-clock budget and one thread, the arms side by side, then scores every arm with
scripts/layers_sites.py (face and palm sections of every appearance family) and prints
the table (docs/layers.md, "Body sites"). An arm is a model grid ``DZ,DX`` (the depth ×
lateral µm per model pixel; a coarser grid gives the same U-Net more µm of context and
costs fewer pixels) and optionally a depth ``@LEVELS``: a U-Net with that many
resolution levels (``TrainConfig.levels``: the initial model's widths, the deepest
repeated), warm-started from the initial model's tensors that fit it (its upper
levels).

    python scripts/layers_grid_context.py --data W/data --init MODEL --work out/grid \
        --grid 1,2 --grid 2,4 --minutes 24 --layer-intensity 0.5 --seed 7
    python scripts/layers_grid_context.py --data W/data --init MODEL --work out/depth \
        --grid 1,2 --grid 1,2@7 --minutes 40 --layer-intensity 0.5 --seed 7

Phantom data only: it compares training settings, it does not measure clinical
performance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import layers_sites
from layers_phantom_data import chosen_families


def grid_label(grid: tuple) -> str:
    """``grid 1x2 um``, or ``grid 1x2 um, 7 levels`` for an arm with its own depth."""
    label = f"grid {grid[0]:g}x{grid[1]:g} um"
    return label if len(grid) < 3 or grid[2] is None else f"{label}, {grid[2]} levels"


def init_at_grid(init: Path, grid: tuple[float, float], dest: Path) -> Path:
    """A copy of model ``init`` whose manifest declares model grid ``grid`` (the weights
    are kept: fine-tuning adapts them to the new scale)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(init / "model.safetensors", dest / "model.safetensors")
    manifest = json.loads((init / "model.json").read_text(encoding="utf-8"))
    manifest.setdefault("preprocessing", {})["spacing_um"] = [float(g) for g in grid]
    manifest.pop("uncertainty", None)  # calibrated for the old grid
    (dest / "model.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return dest


def train_arm(data: Path, init: Path, out: Path, *, minutes: float, epochs: int,
              layer_intensity: float, seed: int, levels: int | None = None) -> None:  # fmt: skip
    """One arm, one thread (run in its own process)."""
    import torch

    from skinoct.layers import TrainConfig, train_layers

    torch.set_num_threads(1)
    config = TrainConfig(folds=1, epochs=epochs, patience=40, lr=5e-4, seed=seed, device="cpu",
                         layer_intensity=layer_intensity, time_budget_s=minutes * 60.0,
                         num_workers=0, levels=levels)  # fmt: skip
    train_layers(data, out, config, init=init, provenance={"synthetic_data": True})


def parse_grid(text: str) -> tuple[float, float, int | None]:
    """``DZ,DX`` or ``DZ,DX@LEVELS`` -> ``(dz, dx, levels or None)``."""
    grid, _, depth = text.partition("@")
    try:
        dz, dx = (float(v) for v in grid.split(","))
        levels = int(depth) if depth else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"an arm is DZ,DX in µm, optionally @LEVELS, got {text!r}"
        ) from None
    if dz <= 0 or dx <= 0:
        raise argparse.ArgumentTypeError(f"grid steps must be positive, got {text!r}")
    if levels is not None and not 2 <= levels <= 8:
        raise argparse.ArgumentTypeError(f"a U-Net has 2-8 levels here, got {text!r}")
    return dz, dx, levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="training dataset")
    parser.add_argument("--init", type=Path, required=True, help="initial model folder")
    parser.add_argument("--work", type=Path, default=Path("out/layers_grid"))
    parser.add_argument("--grid", type=parse_grid, action="append", required=True,
                        help="an arm: model grid DZ,DX in µm, optionally @LEVELS "
                             "(repeat per arm)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=24.0, help="budget per arm")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--layer-intensity", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--n", type=int, default=8, help="test sections per family and site")
    parser.add_argument("--families", default="all")
    parser.add_argument("--_arm", nargs=3, metavar=("INIT", "OUT", "LEVELS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)

    families = chosen_families(parser, args.families)
    if args._arm:
        init, out = (Path(p) for p in args._arm[:2])
        levels = None if args._arm[2] == "-" else int(args._arm[2])
        train_arm(args.data, init, out, minutes=args.minutes, epochs=args.epochs,
                  layer_intensity=args.layer_intensity, seed=args.seed,
                  levels=levels)  # fmt: skip
        return 0
    arms = {}
    procs = []
    for grid in args.grid:
        name = grid_label(grid)
        folder = args.work / name.replace(", ", "_").replace(" ", "_")
        init = init_at_grid(args.init, grid[:2], folder / "init")
        levels = "-" if grid[2] is None else str(grid[2])
        arms[name] = folder / "model"
        if not (arms[name] / "model.safetensors").is_file():  # a finished arm is kept
            cmd = [sys.executable, __file__, "--data", str(args.data), "--init", str(args.init),
                   "--grid", "1,1", "--minutes", str(args.minutes), "--epochs", str(args.epochs),
                   "--layer-intensity", str(args.layer_intensity), "--seed", str(args.seed),
                   "--_arm", str(init), str(arms[name]), levels]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            procs.append(subprocess.Popen(cmd, env=env))
    if any(p.wait() != 0 for p in procs):
        print("an arm failed; see its output above", file=sys.stderr)
        return 1
    datasets = layers_sites.render(args.work / "sites", families, n=args.n)
    results = {name: layers_sites.score(str(model), datasets, engine="auto")
               for name, model in arms.items()}  # fmt: skip
    command = "python scripts/layers_grid_context.py " + " ".join(argv or sys.argv[1:])
    print(layers_sites.table(results, families, command=command))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
