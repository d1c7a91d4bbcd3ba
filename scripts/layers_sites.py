"""Layer-model scores by body site and appearance family (docs/layers.md, "Body sites").

Renders phantom sections of every appearance family at two body sites that bracket the
stratum corneum's thickness — face (SC ≈ 10–20 µm) and palm (SC ≈ 60–220 µm) — from
seeds no training script uses (face 9200, palm 9100; no simulated disruptions), scores
each ``--model`` on them (mean Dice of SC, epidermis and dermis; median over sections of
the column-wise DEJ error, µm) and writes the table into the ``layers_sites`` block of
docs/layers.md.

    python scripts/layers_sites.py --work out/sites                       # bundled model
    python scripts/layers_sites.py --work out/sites --model s4=M1 --model s6=M2 --no-doc

Phantom sections only: the table says where the bundled model fails on skinoct's own
simulator, not how it performs on patients.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _doc_blocks import replace_block
from layers_phantom_data import chosen_families

DOC = Path(__file__).resolve().parents[1] / "docs" / "layers.md"
BLOCK = "layers_sites"
#: Render seed of each site (disjoint from the training scripts' 0–60 and × 100 seeds).
SITE_SEEDS = {"face": 9200, "palm": 9100}


def render(work: Path, families, *, n: int) -> dict[tuple[str, str], Path]:
    """``(family, site) -> dataset folder``, rendered once (kept when present)."""
    from skinoct.phantom import write_section_dataset

    out = {}
    for family in families:
        for site, seed in SITE_SEEDS.items():
            root = work / f"{site}-{family}"
            if not (root / "index.csv").is_file():
                write_section_dataset(root, n, seed=seed, family=family, site=site,
                                      disruption_fraction=0.0)  # fmt: skip
            out[(family, site)] = root
    return out


def score(model_path: str | None, datasets: dict, *, engine: str) -> dict:
    """``(family, site) -> {mean_dice, dej_error_um, n}`` of one model."""
    from skinoct.layers import evaluate_dataset, load_layers_model

    model = load_layers_model(model_path)
    cells = {}
    for key, root in datasets.items():
        sections = evaluate_dataset(model, root, engine=engine)["sections"]
        dice = [statistics.fmean(s["dice"].values()) for s in sections]
        dej = [s["boundary_errors"]["dej"]["mae_um"] for s in sections]
        cells[key] = {
            "mean_dice": statistics.fmean(dice),
            "dej_error_um": statistics.median(dej),
            "n": len(sections),
        }
    return cells


def table(results: dict[str, dict], families, *, command: str) -> str:
    """The markdown block: one row per family, face and palm per model."""
    names = list(results)
    head = "| family | " + " | ".join(
        f"{name} {site}" for name in names for site in SITE_SEEDS) + " |"  # fmt: skip
    lines = [head, "| --- |" + " ---: |" * (len(names) * len(SITE_SEEDS))]
    for family in families:
        cells = []
        for name in names:
            for site in SITE_SEEDS:
                c = results[name][(family, site)]
                cells.append(f"{c['mean_dice']:.3f} ({c['dej_error_um']:.1f} µm)")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    n = next(iter(results.values()))[(families[0], "face")]["n"]
    lines += ["", f"Mean Dice of SC, epidermis and dermis (median DEJ error over the "
              f"sections, µm); {n} phantom sections per cell, seeds "
              f"{', '.join(f'{s} {v}' for s, v in SITE_SEEDS.items())}, no simulated "
              f"disruptions. Command of this table: `{command}`."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("out/layers_sites"))
    parser.add_argument("--n", type=int, default=8, help="sections per family and site")
    parser.add_argument(
        "--model", action="append", default=None, metavar="NAME=DIR",
        help="a model to score (repeatable); default: the bundled model",
    )  # fmt: skip
    parser.add_argument("--families", default="all", help="comma-separated family names")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    args = parser.parse_args(argv)

    families = chosen_families(parser, args.families)
    models: dict[str, str | None] = {"bundled": None}
    if args.model:
        models = {}
        for item in args.model:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                parser.error(f"--model takes NAME=DIR, got {item!r}")
            models[name] = path
    datasets = render(args.work, families, n=args.n)
    results = {name: score(path, datasets, engine=args.engine) for name, path in models.items()}
    command = "python scripts/layers_sites.py " + " ".join(argv or sys.argv[1:])
    block = table(results, families, command=command)
    print(block)
    if not args.no_doc:
        begin = f"<!-- BEGIN {BLOCK} (generated by scripts/layers_sites.py; do not edit) -->"
        replace_block(args.doc, begin, f"<!-- END {BLOCK} -->", block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
