"""Leave-one-family-out evaluation of layer segmentation across phantom appearance families.

For each appearance family F of skinoct.phantom (standard, dark-sc-low-contrast,
smooth-blurred-coarse, artefact-heavy): train on the other families' sections and
test on held-out sections of F; plus in-domain (train on all families, the same
number of training sections, test on every family). Test sections come from other
seeds than any training section (disjoint subjects). Also scores the bundled
model(s) given with ``--model NAME=DIR`` on every family's test sections.

Writes ``WORK/results.json`` and replaces the block between the ``layers_families``
markers in docs/layers.md with the tables (mean Dice, Dice per layer, mean absolute
DEJ position error in µm).

    python scripts/layers_families.py --work out/families \\
        --model old=src/skinoct/models/bundled/layers --model new=out/bundled_new

Models trained elsewhere without one family (the bundled recipe,
``train_layers_bundled.py --families``) are tabled as that family's leave-one-out result
with ``--lofo FAMILY=DIR``; ``--no-runs`` skips the script's own small trainings::

    python scripts/layers_families.py --work out/families --no-runs \
        --lofo artefact-heavy=out/without_artefact-heavy ... \
        --model new=STAGE1_DIR --lofo-reference new

``--paired A,B`` adds a section-by-section comparison of two ``--model`` models (mean
Dice difference with a bootstrap interval over subjects). Runs are resumable (finished
models and datasets are kept in WORK). Phantom results
describe phantoms, not patients.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _doc_blocks import replace_block
from layers_phantom_data import combine_datasets, write_family_datasets

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "layers_families"  #: the doc block this script writes (--block picks another)
LAYERS = ("stratum_corneum", "epidermis", "dermis")
BUNDLED = ROOT / "src" / "skinoct" / "models" / "bundled" / "layers"
TRAIN_SEED, TEST_SEED = 1, 2  # family k of seed s renders with seed 100 s + k


def dej_error_um(pred: np.ndarray, dej_um: np.ndarray, dz: float) -> float:
    """Mean |predicted − true| DEJ depth (µm) over the columns where the true DEJ is in view.

    The predicted DEJ of a column is ``(n_above − 0.5)·dz`` with ``n_above`` the number
    of pixels labelled above the dermis (the top of the first dermis row of an ordered
    column, minus half a pixel: the true curve lies in that pixel).
    """
    n_above = (pred < 3).sum(axis=0)
    estimate = (n_above - 0.5) * dz
    ok = np.isfinite(dej_um)
    return float(np.mean(np.abs(estimate[ok] - dej_um[ok]))) if ok.any() else float("nan")


def score(model, test_dir: Path) -> dict:
    """Dice per layer and DEJ error of ``model`` on every section of a test dataset."""
    from skinoct.io import read_image, read_mask
    from skinoct.layers import dice_per_layer, discover_dataset, segment_section

    dataset = discover_dataset(test_dir)
    rows = []
    for record in dataset.records:
        image = read_image(record.image, axes="zx")
        mask = read_mask(record.mask, axes="zx").data
        labels = segment_section(image.data, model, spacing_um=image.spacing_um).labels
        dice = dice_per_layer(labels, mask, label_values=(1, 2, 3))
        dice["mean_dice"] = float(np.nanmean([dice[k] for k in LAYERS]))
        truth = np.genfromtxt(test_dir / "ground_truth" / f"{record.id}.csv", delimiter=",",
                              names=True)  # fmt: skip
        dej = dej_error_um(labels, np.asarray(truth["dej_um"], float), image.spacing_um[0])
        rows.append({"id": record.id, **dice, "dej_error_um": dej})
    keys = (*LAYERS, "mean_dice", "dej_error_um")
    return {
        "n_sections": len(rows),
        **{k: float(np.nanmean([r[k] for r in rows])) for k in keys},
        "sections": rows,
    }


def train(data: Path, out: Path, args, init) -> Path:
    from skinoct.layers import SYNTHETIC_NOTICE, TrainConfig, train_layers

    if (out / "model.json").is_file():
        return out
    config = TrainConfig(folds=0, epochs=args.epochs, batch_size=args.batch_size,
                         patches_per_section=args.patches_per_section, lr=args.lr,
                         seed=0, device="cpu")  # fmt: skip
    t0 = time.perf_counter()
    train_layers(data, out, config, init=init, notice=SYNTHETIC_NOTICE, restart=True,
                 provenance={"synthetic_data": True, "script": "scripts/layers_families.py"})
    print(f"trained {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def run(args) -> dict:
    from skinoct.layers import load_layers_model
    from skinoct.phantom import FAMILIES

    families = list(FAMILIES)
    work = args.work
    t0 = time.perf_counter()
    train_parts = write_family_datasets(work / "train", families, n_per_family=args.per_family,
                                        sections_per_subject=4, seed=TRAIN_SEED)  # fmt: skip
    test_parts = write_family_datasets(work / "test", families, n_per_family=args.test_per_family,
                                       sections_per_subject=4, seed=TEST_SEED)  # fmt: skip
    print(f"datasets in {time.perf_counter() - t0:.0f} s", flush=True)
    n_in = args.per_family * (len(families) - 1) // len(families)  # same training size
    runs = {f"without {f}": ({g: train_parts[g] for g in families if g != f}, None, [f])
            for f in families}  # fmt: skip
    runs["in-domain"] = (train_parts, n_in, families)
    if args.no_runs:
        runs = {}
    results = {"runs": {}, "models": {}}
    for name, (parts, limit, tests) in runs.items():
        key = name.replace(" ", "_")
        if args.only and key != args.only:
            continue
        data = combine_datasets(parts, work / "runs" / key / "data", limit=limit)
        model_dir = train(data, work / "runs" / key / "model", args, args.init)
        cache = work / "runs" / key / "scores.json"
        if cache.is_file():
            results["runs"][name] = json.loads(cache.read_text(encoding="utf-8"))
        else:
            model = load_layers_model(model_dir)
            results["runs"][name] = {
                "train_families": list(parts), "n_train": len(list((data / "masks").iterdir())),
                "test": {f: score(model, test_parts[f]) for f in tests},
            }  # fmt: skip
            cache.write_text(json.dumps(results["runs"][name], indent=1), encoding="utf-8")
        print(name, {f: round(v["mean_dice"], 4) for f, v in results["runs"][name]["test"].items()},
              flush=True)  # fmt: skip
    results["lofo"] = {}
    for family, path in args.lofo:
        if args.only and args.only != "models":
            break
        results["lofo"][family] = score_model(path, test_parts, families, work, f"lofo_{family}")
        scores = results["lofo"][family]["test"]
        print(f"without {family}", {f: round(v["mean_dice"], 4) for f, v in scores.items()},
              flush=True)  # fmt: skip
    for name, path in args.model:
        if args.only and args.only != "models":
            break
        results["models"][name] = score_model(path, test_parts, families, work, name)
        scores = results["models"][name]["test"]
        print(name, {f: round(v["mean_dice"], 4) for f, v in scores.items()}, flush=True)
    results["labels"] = dict(args.label)
    results["lofo_reference"] = args.lofo_reference
    results["paired"] = []
    subjects = {f: _subjects(test_parts[f]) for f in families} if args.paired else {}
    for first, second in args.paired:
        if first not in results["models"] or second not in results["models"]:
            raise SystemExit(f"--paired {first},{second}: both must be --model names")
        results["paired"].append(paired_comparison(
            results["models"][first]["test"], results["models"][second]["test"], subjects,
            names=(first, second)))  # fmt: skip
    results["budget"] = {
        "per_family_train": args.per_family, "per_family_test": args.test_per_family,
        "epochs": args.epochs, "patches_per_section": args.patches_per_section,
        "batch_size": args.batch_size, "lr": args.lr,
        "init": None if args.init is None else str(args.init),
        "wall_s": round(time.perf_counter() - t0),
        "command": "python scripts/layers_families.py " + shlex.join(sys.argv[1:]),
    }  # fmt: skip
    return results


def score_model(path: Path, test_parts: dict, families, work: Path, name: str) -> dict:
    """Scores of the model in ``path`` on every family's test sections (cached by weights)."""
    from skinoct.layers import load_layers_model

    model = load_layers_model(path)
    cache = work / "models" / f"{name}_{model.weights_sha256[:16]}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    data = model.manifest.get("training", {}).get("data", {})
    out = {
        "path": str(path), "weights_sha256": model.weights_sha256,
        "train_families": data.get("families"),
        "test": {f: score(model, test_parts[f]) for f in families},
    }  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


def _subjects(dataset: Path) -> dict[str, str]:
    """Section id → subject id of a phantom dataset (its ``index.csv``)."""
    import csv

    with (dataset / "index.csv").open(encoding="utf-8", newline="") as f:
        return {row["id"]: row["subject"] for row in csv.DictReader(f)}


def paired_comparison(first: dict, second: dict, subjects: dict, *, names=("A", "B"),
                      resamples: int = 2000, seed: int = 0) -> dict:  # fmt: skip
    """Per family, ``second − first`` on the same test sections: mean Dice difference with
    a 95 % percentile bootstrap interval that resamples whole subjects (sections of one
    subject are not independent; Efron & Tibshirani 1993, ch. 13), the sections where
    ``second`` scores higher, and the median per-section change of the DEJ error."""
    rng = np.random.default_rng(seed)
    out = {"names": list(names), "resamples": int(resamples), "families": {}}
    for family, a in first.items():
        b = {r["id"]: r for r in second[family]["sections"]}
        rows = [(subjects[family][r["id"]], b[r["id"]]["mean_dice"] - r["mean_dice"],
                 b[r["id"]]["dej_error_um"] - r["dej_error_um"])
                for r in a["sections"]]  # fmt: skip
        by_subject: dict = {}
        for subject, d_dice, _ in rows:
            by_subject.setdefault(subject, []).append(d_dice)
        groups = list(by_subject.values())
        boot = []
        for _ in range(resamples):
            pick = rng.integers(0, len(groups), len(groups))
            boot.append(np.mean(np.concatenate([groups[i] for i in pick])))
        d_dice = np.array([r[1] for r in rows])
        out["families"][family] = {
            "n_sections": len(rows), "n_subjects": len(groups),
            "mean_dice_diff": float(d_dice.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "second_better": int((d_dice > 0).sum()),
            "median_dej_error_diff_um": float(np.median([r[2] for r in rows])),
        }  # fmt: skip
    return out


def paired_markdown(paired: dict) -> list[str]:
    a, b = paired["names"]
    lines = [f"Paired, `{b}` − `{a}` on the same sections (95 % interval: bootstrap over "
             f"subjects, {paired['resamples']:,} resamples):", "",
             "| family | sections (subjects) | mean Dice difference | 95 % interval "
             f"| sections where `{b}` is higher | median DEJ error change (µm) |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for family, r in paired["families"].items():
        lo, hi = r["ci95"]
        lines.append(f"| {family} | {r['n_sections']} ({r['n_subjects']}) | "
                     f"{r['mean_dice_diff']:+.3f} | {lo:+.3f} to {hi:+.3f} | "
                     f"{r['second_better']} / {r['n_sections']} | "
                     f"{r['median_dej_error_diff_um']:+.1f} |")  # fmt: skip
    return lines


def lofo_markdown(results: dict, reference: str | None) -> list[str]:
    """Table of the externally trained leave-one-family-out models (``--lofo``)."""
    ref = results["models"].get(reference) if reference else None
    head = ("| held-out family | mean Dice | SC | epidermis | dermis | DEJ error (µm) "
            "| mean Dice, its training families")  # fmt: skip
    head += f" | in-domain `{reference}`, same family |" if ref else " |"
    lines = [head, "| --- " * (head.count("|") - 1) + "|"]
    for family, model in results["lofo"].items():
        r = model["test"][family]
        others = [v["mean_dice"] for f, v in model["test"].items() if f != family]
        cells = [f"**{r['mean_dice']:.3f}**", *(f"{r[k]:.3f}" for k in LAYERS),
                 f"{r['dej_error_um']:.1f}", f"{np.mean(others):.3f}"]  # fmt: skip
        if ref:
            cells.append(f"{ref['test'][family]['mean_dice']:.3f}")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return lines


def _row(label: str, r: dict) -> str:
    return (f"| {label} | {r['n_sections']} | **{r['mean_dice']:.3f}** | "
            + " | ".join(f"{r[k]:.3f}" for k in LAYERS) + f" | {r['dej_error_um']:.1f} |")


def markdown(results: dict) -> str:
    head = ("| | test sections | mean Dice | SC | epidermis | dermis | DEJ error (µm) |\n"
            "| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    labels = results.get("labels", {})
    lines = []
    if results.get("lofo"):
        lines += [labels.get("lofo", "Leave-one-family-out models trained outside this "
                             "script (`--lofo FAMILY=DIR`), each scored on the test "
                             "sections of the family it never saw:"), "",
                  *lofo_markdown(results, results.get("lofo_reference"))]  # fmt: skip
    if results["runs"]:
        lines += [""] * bool(lines) + [
            "Leave-one-family-out (train on the other three families, test on the held-out "
            "one) and in-domain (train on all four, same number of training sections), "
            "trained by this script:", "", head]  # fmt: skip
    for name, run in results["runs"].items():
        for fam, r in run["test"].items():
            label = f"{fam} (held out)" if name != "in-domain" else f"{fam} (in-domain)"
            lines.append(_row(label, r))
    for name, model in results["models"].items():
        what = labels.get(name, f"`{model['path']}`")
        lines += ["", f"Model `{name}` ({what}, sha256 "
                      f"`{model['weights_sha256'][:12]}…`) on the same test sections:", "", head]
        lines += [_row(fam, r) for fam, r in model["test"].items()]
    for paired in results.get("paired", []):
        lines += ["", *paired_markdown(paired)]
    b = results["budget"]
    if not results["runs"]:
        lines += ["", f"{b['per_family_test']} test sections per family (seeds "
                  f"{100 * TEST_SEED}–{100 * TEST_SEED + 3}). Command of this table: "
                  f"`{b['command']}`."]  # fmt: skip
        return "\n".join(lines)
    lines += ["", f"Budget: {b['per_family_train']} training and {b['per_family_test']} test "
              f"sections per family, {b['epochs']} epochs × {b['patches_per_section']} patches "
              f"per section, batch {b['batch_size']}, lr {b['lr']}, start from "
              f"{'`' + b['init'] + '`' if b['init'] else 'random weights'}. Command of this "
              f"table: `{b['command']}`."]  # fmt: skip
    return "\n".join(lines)


def markers(name: str = BLOCK) -> tuple[str, str]:
    """The BEGIN and END comment lines of doc block ``name``."""
    begin = f"<!-- BEGIN {name} (generated by scripts/layers_families.py; do not edit) -->"
    return begin, f"<!-- END {name} -->"


def update_doc(path: Path, block: str, name: str = BLOCK) -> None:
    replace_block(path, *markers(name), block)


def install_problem(name: str, models: dict[str, Path]) -> str | None:
    """Why model ``name`` cannot be installed as the bundled model, or None.

    Checked before any scoring: the candidate must be one of the ``--model`` models and
    carry a calibrated DEJ-uncertainty threshold of its own (``uncertainty`` in its
    manifest). A threshold calibrated for other weights would set the false-flag rate
    of the shipped flag to an unknown value.
    """
    if name not in models:
        return f"--install {name}: not one of the --model names ({', '.join(models) or 'none'})"
    manifest_path = Path(models[name]) / "model.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{manifest_path}: cannot read the model manifest ({exc})"
    calibration = manifest.get("uncertainty")
    if not isinstance(calibration, dict) or "dej_entropy_threshold" not in calibration:
        return (f"{manifest_path}: no calibrated DEJ-uncertainty threshold; run "
                f"python scripts/calibrate_layers.py {models[name]} first")  # fmt: skip
    if calibration.get("weights_sha256") != manifest.get("weights_sha256"):
        return (f"{manifest_path}: the DEJ-uncertainty threshold was calibrated for "
                f"other weights; run python scripts/calibrate_layers.py {models[name]} "
                "again")  # fmt: skip
    return None


def install(name: str, results: dict, dest: Path) -> None:
    """Copy model ``name`` into ``dest`` (the bundled folder) with its held-out family scores.

    ``model.json`` gains ``scores.held_out`` (per layer: mean, sd and count over the
    families' held-out test sections) and ``scores.held_out_by_family``; the per-section
    figures go to ``heldout_report.json``. A ``cv_report.json`` of an earlier model is
    removed (the new model was trained without cross-validation).
    """
    import shutil

    model = results["models"][name]
    src = Path(model["path"])
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "model.safetensors", dest / "model.safetensors")
    manifest = json.loads((src / "model.json").read_text(encoding="utf-8"))
    sections = [r for fam in model["test"].values() for r in fam["sections"]]
    summary = {}
    for key in (*LAYERS, "mean_dice", "dej_error_um"):
        values = np.array([r[key] for r in sections], float)
        values = values[np.isfinite(values)]
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)),
                        "n": int(values.size)}  # fmt: skip
    by_family = {f: {k: v[k] for k in (*LAYERS, "mean_dice", "dej_error_um", "n_sections")}
                 for f, v in model["test"].items()}  # fmt: skip
    manifest["scores"] = {
        "held_out": summary,
        "held_out_by_family": by_family,
        "held_out_data": "phantom sections of every appearance family rendered with "
        f"seeds {100 * TEST_SEED}-{100 * TEST_SEED + 3} (disjoint from training); "
        "scripts/layers_families.py",
    }
    (dest / "model.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    report = {"model": name, "weights_sha256": model["weights_sha256"], "summary": summary,
              "by_family": model["test"]}  # fmt: skip
    (dest / "heldout_report.json").write_text(json.dumps(report, indent=1) + "\n",
                                              encoding="utf-8")  # fmt: skip
    if (dest / "cv_report.json").is_file():
        (dest / "cv_report.json").unlink()


def _model_arg(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    if not path:
        raise argparse.ArgumentTypeError("use NAME=DIR")
    return name, Path(path)


def _lofo_arg(text: str) -> tuple[str, Path]:
    from skinoct.phantom import FAMILIES

    family, _, path = text.partition("=")
    if family not in FAMILIES or not path:
        raise argparse.ArgumentTypeError(f"use FAMILY=DIR with FAMILY one of {list(FAMILIES)}")
    return family, Path(path)


def _label_arg(text: str) -> tuple[str, str]:
    name, _, label = text.partition("=")
    if not label:
        raise argparse.ArgumentTypeError("use NAME=TEXT")
    return name, label


def _pair_arg(text: str) -> tuple[str, str]:
    first, _, second = text.partition(",")
    if not first or not second:
        raise argparse.ArgumentTypeError("use A,B (two --model names)")
    return first, second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("out/families"))
    parser.add_argument("--per-family", type=int, default=16, help="training sections/family")
    parser.add_argument("--test-per-family", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patches-per-section", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--init", type=Path, default=None, help="model folder to start from")
    parser.add_argument("--model", type=_model_arg, action="append", default=[],
                        help="NAME=DIR: also score this model on every family")  # fmt: skip
    parser.add_argument("--label", type=_label_arg, action="append", default=[],
                        help="NAME=TEXT: how the table describes model NAME (default: its "
                        "path)")  # fmt: skip
    parser.add_argument("--lofo", type=_lofo_arg, action="append", default=[],
                        help="FAMILY=DIR: a model trained without FAMILY (e.g. by "
                        "train_layers_bundled.py --families); scored on every family and "
                        "tabled as that family's leave-one-out result")  # fmt: skip
    parser.add_argument("--lofo-reference", metavar="NAME", default=None,
                        help="a --model trained the same way on all families, shown beside "
                        "the --lofo rows")  # fmt: skip
    parser.add_argument("--no-runs", action="store_true",
                        help="skip this script's own (small) leave-one-out and in-domain "
                        "trainings")  # fmt: skip
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "layers.md")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--block", default=BLOCK,
                        help="name of the marker block of --doc to replace (another table "
                        "than the default one, e.g. for a later model)")  # fmt: skip
    parser.add_argument("--only", metavar="RUN", default=None,
                        help="train and score one run only (e.g. without_standard, in-domain), "
                        "or 'models' to score the --model models only; for parallel "
                        "processes")  # fmt: skip
    parser.add_argument("--paired", type=_pair_arg, action="append", default=[],
                        metavar="A,B", help="also compare --model B with --model A "
                        "section by section (Dice difference, subject bootstrap)")  # fmt: skip
    parser.add_argument("--install", metavar="NAME", default=None,
                        help="copy model NAME (of --model) into the bundled folder with its "
                        "held-out scores")  # fmt: skip
    args = parser.parse_args(argv)
    if args.install:
        problem = install_problem(args.install, dict(args.model))
        if problem:
            parser.error(problem)
    results = run(args)
    if args.only:
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    block = markdown(results)
    print(block)
    if not args.no_doc:
        update_doc(args.doc, block, args.block)
    if args.install:
        install(args.install, results, BUNDLED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
