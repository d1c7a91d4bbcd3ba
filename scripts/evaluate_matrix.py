"""Tables and figures of docs/matrix.md from a run of scripts/train_matrix_bundled.py.

Reads ``RUN/results.json`` and ``RUN/predictions.csv`` (or ``.csv.gz``), then

- writes one confusion-matrix figure per experiment, styled like seed 002 Figure 2,
  to ``docs/img/matrix_confusion_<experiment>.png``;
- rewrites the results table in ``docs/matrix.md`` between the markers
  ``<!-- matrix-results:start -->`` and ``<!-- matrix-results:end -->``;
- with ``--profile``, grades the DEJ-relative tiles of a phantom volume with the
  bundled model and plots the expected grade against the volume's true q(depth)
  (``docs/img/matrix_profile_check.png``).

All numbers are on synthetic phantom tiles: they say the code does what it should,
not how the model would do on real LC-OCT images.

Usage::

    python scripts/evaluate_matrix.py docs/matrix/phantom_run docs/matrix/bundled_run [--profile]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "matrix.md"
IMG = ROOT / "docs" / "img"
START, END = "<!-- matrix-results:start -->", "<!-- matrix-results:end -->"

LABELS = {
    "bundled": ("true grade", "subject", "the bundled model of that run"),
    "clean_subject": ("true grade", "subject", "paper schedule"),
    "clean_random": ("true grade", "random-paper", "paper schedule"),
    "raters_subject": ("6 raters, majority", "subject", "paper schedule"),
    "raters_random": ("6 raters, majority", "random-paper", "paper schedule"),
}


def _load(run: Path):
    results = json.loads((run / "results.json").read_text())
    for name in ("predictions.csv", "predictions.csv.gz"):
        if (run / name).is_file():
            return results, pd.read_csv(run / name, dtype={"tile_id": str})
    raise SystemExit(f"{run}: no predictions.csv")


def load_runs(runs: list[Path]):
    """Merge several runs; experiments are named ``<run folder>/<experiment>``."""
    merged = {"experiments": [], "runs": {}}
    frames = []
    for run in runs:
        results, predictions = _load(run)
        render = results.get("render", {})
        volumes = render.get("volumes", 0)
        data = f"{render.get('n', '?'):,} en-face"
        if volumes:
            data += f" + {volumes} volumes"
        merged["runs"][run.name] = {
            "data": data,
            "device": results.get("device", "?"),
            "torch": results.get("torch", "?"),
        }
        for exp in results["experiments"]:
            merged["experiments"].append(
                dict(exp, name=f"{run.name}/{exp['name']}", short=exp["name"], data=data)
            )
        predictions = predictions.copy()
        for exp in results["experiments"]:  # 8-view TTA predictions of the same test tiles
            for ext in ("", ".gz"):
                tta = run / f"{exp['name']}_test_predictions_tta.csv{ext}"
                if tta.is_file():
                    pred = pd.read_csv(tta, dtype={"tile_id": str}).set_index("tile_id")["pred"]
                    rows = predictions["experiment"] == exp["name"]
                    predictions.loc[rows, "pred_tta"] = predictions.loc[rows, "tile_id"].map(pred)
        predictions["experiment"] = run.name + "/" + predictions["experiment"]
        frames.append(predictions)
    return merged, pd.concat(frames, ignore_index=True)


def _fmt(value) -> str:
    return "–" if value is None or value != value else f"{value:.2f}"


def table(results: dict, predictions: pd.DataFrame) -> str:
    from skinoct.matrix import evaluate_predictions

    lines = [
        "| experiment | phantom tiles | training labels | split | test images | accuracy "
        "| macro precision | macro recall | quadratic κ | accuracy vs true grade | epochs "
        "| images trained |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| seed 002 (real LC-OCT, experts) | – (1,777 real tiles) | 6 experts, majority "
        "| random after augmentation | 4797 | 0.83 | 0.85 | 0.82 | – | – | – | – |",
    ]
    for exp in results["experiments"]:
        name = exp["name"]
        m = exp["metrics"]
        part = predictions[predictions["experiment"] == name]
        truth = evaluate_predictions(part["true_grade"], part["pred"]).accuracy
        labels, split, note = LABELS.get(exp["short"], ("?", exp["options"].get("split"), ""))
        schedule = exp["options"].get("lr_schedule", "plateau")
        if schedule != "plateau":
            note += f", {schedule} LR, precise BN"
        lines.append(
            f"| `{name}` ({note}) | {exp['data']} | {labels} | {split} | {m['n']} "
            f"| {_fmt(m['accuracy'])} "
            f"| {_fmt(m['macro_precision'])} | {_fmt(m['macro_recall'])} "
            f"| {_fmt(m['quadratic_kappa'])} | {_fmt(truth)} | {exp['epochs_run']} "
            f"| {exp['images_seen']:,} |"
        )
    by_name = {e["short"]: e["metrics"]["accuracy"] for e in results["experiments"]}
    gaps = []
    for labels in ("clean", "raters"):
        a, b = by_name.get(f"{labels}_random"), by_name.get(f"{labels}_subject")
        if a is not None and b is not None:
            gaps.append(f"{labels} labels {a - b:+.3f}")
    raters = predictions[predictions["experiment"].str.endswith("/raters_subject")]
    extra = []
    if gaps:
        extra.append("Accuracy gap random-paper − subject split: " + ", ".join(gaps) + ".")
    if len(raters):
        agree = float((raters["true"] == raters["true_grade"]).mean())
        extra.append(
            f"On the `raters_subject` test tiles the raters' majority equals the true phantom "
            f"grade on {agree:.2f} of tiles (the ceiling of a model that learnt the truth, "
            "scored against the majority)."
        )
    bins = [0, 0.05, 0.1, 0.2, 0.3, 0.5001]
    names = [f"{a:g}–{b:.2g}" for a, b in itertools.pairwise(bins)]
    rows = [
        "",
        "Accuracy against the true phantom grade by the tile's distance |q − boundary| to the "
        "nearest grade boundary (1.5, 2.5, 3.5):",
        "",
        "| experiment | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for exp in results["experiments"]:
        part = predictions[predictions["experiment"] == exp["name"]]
        dist = np.min(np.abs(part["q"].to_numpy()[:, None] - np.array([1.5, 2.5, 3.5])), axis=1)
        ok = (part["pred"] == part["true_grade"]).to_numpy()
        cells = []
        for lo, hi in itertools.pairwise(bins):
            sel = (dist >= lo) & (dist < hi)
            cells.append(f"{ok[sel].mean():.2f} ({sel.sum()})" if sel.any() else "–")
        rows.append(f"| `{exp['name']}` | " + " | ".join(cells) + " |")
    if "source" in predictions.columns:
        rows += [
            "",
            "Accuracy by kind of test tile (standalone en-face tiles, or tiles cut from "
            "phantom volumes below the DEJ):",
            "",
            "| experiment | prediction | en-face tiles | volume-cut tiles | all |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for exp in results["experiments"]:
            part = predictions[predictions["experiment"] == exp["name"]]
            for column, how in (("pred", "plain (paper)"), ("pred_tta", "8-view TTA")):
                if column not in part or part[column].isna().all():
                    continue
                cells = []
                kinds = part["source"].fillna("enface")
                for source in ("enface", "volume", None):
                    sel = part if source is None else part[kinds == source]
                    ok = (sel[column] == sel["true_grade"]).mean() if len(sel) else 0.0
                    cells.append(f"{ok:.3f} ({len(sel)})" if len(sel) else "–")
                rows.append(f"| `{exp['name']}` | {how} | " + " | ".join(cells) + " |")
    for run, info in results["runs"].items():
        extra.append(f"`{run}` trained on {info['device']} (torch {info['torch']}).")
    return "\n".join(lines) + "\n\n" + " ".join(extra) + "\n" + "\n".join(rows) + "\n"


def figures(results: dict, predictions: pd.DataFrame) -> list[Path]:
    from skinoct.matrix import evaluate_predictions, plot_confusion

    paths = []
    for exp in results["experiments"]:
        name = exp["name"]
        part = predictions[predictions["experiment"] == name]
        metrics = evaluate_predictions(part["true"], part["pred"])
        labels, split, _ = LABELS.get(exp["short"], ("", "", ""))
        title = f"phantom, {split} split, {labels}: accuracy {metrics.accuracy:.2f}"
        stem = name.replace("/", "_")
        paths.append(plot_confusion(metrics, IMG / f"matrix_confusion_{stem}.png", title=title))
    return paths


def profile_check(model_dir: str | None, *, seed: int = 7) -> Path:
    """Grade a phantom volume's DEJ-relative tiles and compare with its true q(depth).

    Two subjects (a young and an old photo-exposed q profile), tiles every 1 µm, 3 per
    layer, with linear and with nearest-slice sampling along z.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinoct.io import Image, atomic_path
    from skinoct.matrix import expected_grade, load_matrix_model, predict_tiles, profile_tiles
    from skinoct.phantom import VolumeParams, render_volume, subject_q_profile

    model = load_matrix_model(model_dir)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, group in enumerate(("young", "old_photoexposed")):
        rng = np.random.default_rng(seed + k)
        depths = np.arange(0, 121, dtype=float)
        q = subject_q_profile(group, depths, rng=rng)
        params = VolumeParams(size_um=(220.0, 420.0, 1224.0), q_profile=q)
        volume = render_volume(params, seed=seed + k)
        image = Image(volume.volume, volume.spacing_um, "zyx")
        ax.plot(depths[:70], q[:70], color=f"C{k}", lw=2.2, label=f"true q, {group}")
        for sampling, style in (("linear", "--"), ("nearest", ":")):
            tiles, index = profile_tiles(image, volume.dej_um, z_sampling=sampling)
            index["expected"] = expected_grade(predict_tiles(tiles, model))
            mean = index.groupby("depth_um")["expected"].mean()
            ax.plot(
                mean.index,
                mean.to_numpy(),
                color=f"C{k}",
                ls=style,
                lw=1.2,
                label=f"model Σp·g ({sampling} z)",
            )
            error = mean.to_numpy() - np.interp(mean.index, depths, q)
            print(
                f"{group}, {sampling} z: mean true q {q[:70].mean():.2f}, mean score "
                f"{mean.mean():.2f}, per-layer error mean {error.mean():+.2f} "
                f"sd {error.std():.2f} (n = {len(index)} tiles)"
            )
    ax.set_xlabel("depth below the DEJ (µm)")
    ax.set_ylabel("matrix quality")
    ax.set_ylim(1, 4)
    ax.legend(fontsize=6.5, loc="upper right", ncol=2)
    ax.set_title("bundled model on phantom volumes (3 tiles per 1-µm layer)", fontsize=9)
    fig.tight_layout()
    path = IMG / "matrix_profile_check.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def write_table(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC}: markers {START} … {END} not found")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    from skinoct.io import write_text

    write_text(DOC, f"{head}{START}\n{text}{END}{tail}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="Folders with results.json and predictions.csv."
    )
    parser.add_argument("--profile", action="store_true", help="Also the phantom volume check.")
    parser.add_argument("--model", default=None, help="Model for --profile (default: bundled).")
    parser.add_argument("--no-doc", action="store_true", help="Print the table only.")
    args = parser.parse_args(argv)
    results, predictions = load_runs(args.runs)
    text = table(results, predictions)
    print(text)
    if not args.no_doc:
        write_table(text)
    for path in figures(results, predictions):
        print(f"wrote {path.relative_to(ROOT)}")
    if args.profile:
        print(f"wrote {profile_check(args.model).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
