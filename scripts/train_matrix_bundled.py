"""Train the bundled dermal-matrix grading model and the phantom experiments of docs/matrix.md.

Everything here runs on *synthetic phantom tiles* (skinoct.phantom); none of the numbers
it produces is a clinical or real-image performance.

Steps
-----
``render``  writes a phantom tile dataset shaped like seed 002's (1,777 tiles, 57 + 1
            subjects of 31 tiles, as the paper's 57 volunteers): ``WORK/clean`` with the
            true grades and ``WORK/raters`` with six simulated raters
            (:func:`skinoct.phantom.rater_grades`, default noise) whose majority vote is
            the training grade. Subjects are rendered in pairs with their own imaging
            parameters (noise, brightness, stripes, blur), so that a subject split
            tests generalisation to unseen acquisitions.
``train``   trains, in parallel processes:

            - ``bundled``: clean labels, subject split, the paper's options with at most
              ``--bundled-epochs`` epochs (the CPU budget: ≤ 45 min on 2 cores);
            - ``clean_subject`` / ``clean_random``: clean labels, subject split vs the
              paper's random post-augmentation split, paper schedule (early stopping);
            - ``raters_subject`` / ``raters_random``: the same with rater labels.

            It writes ``OUT/bundled/model.{json,safetensors}``, ``OUT/results.json``
            (metrics, splits, histories) and ``OUT/predictions.csv`` (test predictions
            of every experiment with the tile's true q and grade).
``all``     both.

Reproduce (GPU, as for the shipped model; about 6 minutes on one H100)::

    python scripts/train_matrix_bundled.py all --work /tmp/matrix_work --out /tmp/matrix_out \\
        --device cuda --jobs 14
    cp /tmp/matrix_out/bundled/model.* src/skinoct/models/bundled/matrix/
    python scripts/evaluate_matrix.py /tmp/matrix_out   # docs table + figures

The same command with ``--device cpu`` trains on the CPU (the ``bundled`` run alone:
``--only bundled``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

N_TILES = 1777  # seed 002, Table 1
TILES_PER_SUBJECT = 31  # 1,777 / 57 volunteers
SUBJECTS_PER_SHARD = 2  # subjects rendered with the same imaging parameters
N_RATERS = 6
VOLUME_DEPTH_UM = 70.0  # seed 002: the dermis is graded down to 70 µm below the DEJ
VOLUME_STEP_UM = 2.5  # depth step of the volume-cut training tiles

PROVENANCE = {
    "training_data": "synthetic phantom en-face tiles (skinoct.phantom.write_enface_dataset); "
    "no real LC-OCT image",
    "labels": "true phantom grade = round(q), q uniform in [1, 4]",
    "script": "scripts/train_matrix_bundled.py",
}
NOTICE = (
    "bundled dermal-matrix model trained on synthetic phantom tiles only; "
    "not validated on real LC-OCT images, not for clinical use"
)


# --------------------------------------------------------------------------- render


def _render_shard(args) -> str:
    shard, n, seed, out = args
    from skinoct.phantom import EnfaceParams, write_enface_dataset

    rng = np.random.default_rng([seed, shard])
    params = EnfaceParams(
        noise=float(rng.uniform(0.7, 1.4)),
        brightness=float(rng.uniform(0.3, 1.0)),
        stripes=float(rng.uniform(0.0, 0.06)),
        blur_um=float(rng.choice([0.0, 0.0, 1.0, 2.0])),
    )
    write_enface_dataset(
        out,
        n,
        seed=seed * 1000 + shard,
        raters=0,
        tiles_per_volume=TILES_PER_SUBJECT,
        params=params,
        q_distribution="uniform",
    )
    return json.dumps({"shard": shard, "params": dataclasses.asdict(params)})


def _render_volume_tiles(args):
    """Tiles cut from one phantom volume below its DEJ, labelled with q at their depth.

    Each volume has its own linear q(depth) ramp between two uniform draws in [1, 4]
    and its own noise and stripes, so that the grades are covered evenly.
    """
    k, seed = args
    from skinoct.io import Image
    from skinoct.matrix import extract_tiles
    from skinoct.phantom import VolumeParams, render_volume

    rng = np.random.default_rng([seed, 7, k])
    top, bottom = rng.uniform(1.0, 4.0, size=2)
    depths = np.arange(0.0, 121.0)
    q = np.clip(top + (bottom - top) * depths / VOLUME_DEPTH_UM, 1.0, 4.0)
    params = VolumeParams(
        size_um=(250.0, 420.0, 1224.0),  # the paper's 1,224 µm field: 3 + 2 tiles per depth
        q_profile=q,
        noise=float(rng.uniform(0.7, 1.4)),
        stripes=float(rng.uniform(0.0, 0.06)),
    )
    vol = render_volume(params, seed=rng)
    volume_id = f"vol{k:03d}"
    tiles, index = extract_tiles(
        Image(vol.volume, vol.spacing_um, "zyx"),
        vol.dej_um,
        step_um=VOLUME_STEP_UM,
        volume_id=volume_id,
        subject=volume_id,
    )
    index["q"] = np.interp(index["depth_um"].to_numpy(), vol.depths_um, vol.q_profile)
    return tiles, index


def render(work: Path, *, n: int, seed: int, jobs: int, volumes: int = 0) -> None:
    """Render the phantom dataset in shards, merge them, add rater labels."""
    import pandas as pd

    from skinoct.matrix import write_tile_png
    from skinoct.phantom import grade_of, rater_grades

    work.mkdir(parents=True, exist_ok=True)
    shards_dir = work / "shards"
    per_shard = TILES_PER_SUBJECT * SUBJECTS_PER_SHARD
    n_shards = math.ceil(n / per_shard)
    tasks = [
        (i, min(per_shard, n - i * per_shard), seed, str(shards_dir / f"{i:03d}"))
        for i in range(n_shards)
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        shard_info = [json.loads(s) for s in pool.map(_render_shard, tasks)]
    print(f"rendered {n} tiles in {n_shards} shards: {time.perf_counter() - t0:.0f} s", flush=True)

    clean = work / "clean"
    (clean / "tiles").mkdir(parents=True, exist_ok=True)
    tables, labels = [], []
    for i in range(n_shards):
        src = shards_dir / f"{i:03d}"
        index = pd.read_csv(src / "tiles.csv", dtype={"tile_id": str})
        label = pd.read_csv(src / "labels.csv", dtype={"tile_id": str})
        prefix = f"p{i:03d}-"
        for tile_id in index["tile_id"]:
            os.replace(src / "tiles" / f"{tile_id}.png", clean / "tiles" / f"{prefix}{tile_id}.png")
        for column in ("tile_id", "volume_id", "subject"):
            index[column] = prefix + index[column].astype(str)
        label["tile_id"] = prefix + label["tile_id"]
        index["shard"] = i
        tables.append(index)
        labels.append(label)
    if volumes:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for tiles, table in pool.map(_render_volume_tiles, [(k, seed) for k in range(volumes)]):
                for tile, tile_id in zip(tiles, table["tile_id"], strict=True):
                    write_tile_png(clean / "tiles" / f"{tile_id}.png", tile)
                table["source"] = "volume"
                tables.append(table)
                grades = grade_of(table["q"].to_numpy())
                labels.append(pd.DataFrame({"tile_id": table["tile_id"], "grade": grades}))
        n_volume = sum(len(t) for t in tables[n_shards:])
        print(
            f"cut {n_volume} tiles from {volumes} phantom volumes: "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    index = pd.concat(tables, ignore_index=True)
    index["source"] = index["source"].fillna("enface") if "source" in index else "enface"
    label = pd.concat(labels, ignore_index=True)
    index.to_csv(clean / "tiles.csv", index=False)
    label.to_csv(clean / "labels.csv", index=False)
    shutil.rmtree(shards_dir)

    raters = work / "raters"
    raters.mkdir(exist_ok=True)
    if not (raters / "tiles").exists():
        (raters / "tiles").symlink_to("../clean/tiles")
    index.to_csv(raters / "tiles.csv", index=False)
    grades, majority = rater_grades(
        index["q"].to_numpy(), n_raters=N_RATERS, rng=np.random.default_rng([seed, 99])
    )
    table = pd.DataFrame(grades, columns=[f"rater_{r + 1}" for r in range(N_RATERS)])
    table.insert(0, "tile_id", index["tile_id"])
    table["grade"] = majority
    table.to_csv(raters / "labels.csv", index=False)
    (work / "render.json").write_text(
        json.dumps({"n": n, "volumes": volumes, "seed": seed, "shards": shard_info})
    )
    agree = float((majority == label["grade"].to_numpy()).mean())
    print(f"datasets in {work}: majority of {N_RATERS} raters = true grade on {agree:.3f}")


# --------------------------------------------------------------------------- train


#: The bundled model departs from the paper's schedule in three documented ways: a
#: fixed epoch budget with a cosine learning rate (the plateau rule rarely fires in a
#: few epochs), precise-BN before each validation (see TrainConfig.bn_recalibration),
#: and early stopping that only keeps the best weights.
BUNDLED_OPTIONS = {"split": "subject", "lr_schedule": "cosine", "bn_recalibration": 2048}


def _experiments(bundled_epochs: int, max_time: float):
    base = {"epochs": 200, "max_time_s": max_time}
    bundled = dict(BUNDLED_OPTIONS, epochs=bundled_epochs, early_stop_patience=bundled_epochs)
    return {
        "bundled": ("clean", bundled),
        "clean_subject": ("clean", {"split": "subject", **base}),
        "clean_random": ("clean", {"split": "random-paper", **base}),
        "raters_subject": ("raters", {"split": "subject", **base}),
        "raters_random": ("raters", {"split": "random-paper", **base}),
    }


def _train_one(args) -> dict:
    name, data, out, options, device, seed = args
    import torch

    torch.set_num_threads(2)
    from skinoct.matrix import TrainConfig, train_matrix

    config = TrainConfig(device=device, seed=seed, **options)
    log_path = Path(out).with_suffix(".log")
    with open(log_path, "w", encoding="utf-8") as log:

        def say(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        provenance = dict(PROVENANCE, experiment=name)
        render_info = json.loads((Path(data).parent / "render.json").read_text())
        if render_info.get("volumes"):
            provenance["training_data"] = (
                f"synthetic phantom tiles: {render_info['n']} en-face tiles "
                "(skinoct.phantom.write_enface_dataset) and tiles cut every 2.5 µm, 0–70 µm "
                f"below the DEJ, from {render_info['volumes']} phantom volumes "
                "(skinoct.phantom.render_volume, skinoct.matrix.extract_tiles); no real LC-OCT "
                "image"
            )
            provenance["labels"] += "; volume tiles: round(q) at the tile's depth"
        result = train_matrix(
            data, out, config=config, provenance=provenance, notice=NOTICE, log=say
        )
    return {
        "name": name,
        "options": options,
        "metrics": result.metrics.to_dict(),
        "split": result.split,
        "seconds": round(result.seconds, 1),
        "images_seen": result.images_seen,
        "epochs_run": len(result.history),
        "history": result.history.to_dict(orient="list"),
    }


def train(
    work: Path,
    out: Path,
    *,
    device: str,
    jobs: int,
    seed: int,
    bundled_epochs: int,
    max_time: float,
    only: list[str] | None,
) -> None:
    import multiprocessing as mp

    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    experiments = _experiments(bundled_epochs, max_time)
    names = only or list(experiments)
    tasks = [
        (
            name,
            str(work / experiments[name][0]),
            str(out / name),
            experiments[name][1],
            device,
            seed,
        )
        for name in names
    ]
    t0 = time.perf_counter()
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
        results = list(pool.map(_train_one, tasks))
    print(f"trained {len(results)} models in {time.perf_counter() - t0:.0f} s", flush=True)

    for result in results:
        result["metrics_tta"] = evaluate_tta(work / "clean", out / result["name"])
    truth_index = pd.read_csv(work / "clean" / "tiles.csv", dtype={"tile_id": str})
    columns = ["tile_id", "q", "source"] if "source" in truth_index.columns else ["tile_id", "q"]
    truth = truth_index[columns]
    truth_grade = pd.read_csv(work / "clean" / "labels.csv", dtype={"tile_id": str})
    truth = truth.merge(truth_grade.rename(columns={"grade": "true_grade"}), on="tile_id")
    frames = []
    for result in results:
        pred = pd.read_csv(out / result["name"] / "test_predictions.csv", dtype={"tile_id": str})
        pred = pred.merge(truth, on="tile_id", how="left")
        pred.insert(0, "experiment", result["name"])
        frames.append(pred)
    pd.concat(frames, ignore_index=True).to_csv(
        out / "predictions.csv", index=False, float_format="%.5g"
    )
    import torch

    info = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "render": json.loads((work / "render.json").read_text()),
        "experiments": results,
    }
    by_source = {}
    if "source" in truth_index.columns:
        scored = pd.concat(frames, ignore_index=True)
        for (name, source), group in scored.groupby(["experiment", "source"]):
            by_source.setdefault(name, {})[source] = {
                "n": len(group),
                "accuracy": float((group["true"] == group["pred"]).mean()),
            }
    info["accuracy_by_source"] = by_source
    (out / "results.json").write_text(json.dumps(info, indent=1))
    for result in results:
        m = result["metrics"]
        parts = by_source.get(result["name"], {})
        if parts:
            print(
                f"{result['name']:>15}: "
                + ", ".join(f"{k} {v['accuracy']:.3f} (n={v['n']})" for k, v in parts.items())
            )
        print(
            f"{result['name']:>15}: acc {m['accuracy']:.3f} P {m['macro_precision']:.3f} "
            f"R {m['macro_recall']:.3f} kappa {m['quadratic_kappa']:.3f} | "
            f"{result['epochs_run']} epochs, {result['images_seen']} images, "
            f"{result['seconds']:.0f} s"
        )


def evaluate_tta(data: Path, model_dir: Path) -> dict:
    """Grade the test tiles again with 8-view test-time augmentation (not in the paper).

    Writes ``MODEL_DIR/test_predictions_tta.csv`` and returns the metrics.
    """
    import pandas as pd

    from skinoct.matrix import (
        evaluate_predictions,
        expected_grade,
        load_matrix_model,
        predict_tiles,
        read_tile_png,
    )

    table = pd.read_csv(model_dir / "test_predictions.csv", dtype={"tile_id": str})
    table = table[table["augmentation"] == "identity"].reset_index(drop=True)
    model = load_matrix_model(model_dir)
    tiles = [read_tile_png(data / "tiles" / f"{tile_id}.png") for tile_id in table["tile_id"]]
    probs = np.empty((len(tiles), len(model.classes)), dtype=np.float32)
    by_shape: dict[tuple, list[int]] = {}
    for i, tile in enumerate(tiles):  # en-face and volume-cut tiles differ in size
        by_shape.setdefault(tile.shape, []).append(i)
    for rows in by_shape.values():
        stack = np.stack([tiles[i] for i in rows])
        probs[rows] = predict_tiles(stack, model, engine="onnx", tta=True)
    table["pred"] = np.asarray(model.classes)[probs.argmax(axis=1)]
    for j, grade in enumerate(model.classes):
        table[f"p_{grade}"] = probs[:, j]
    table["expected_grade"] = expected_grade(probs, classes=model.classes)
    table.to_csv(model_dir / "test_predictions_tta.csv", index=False, float_format="%.5g")
    # beside results.json too, where scripts/evaluate_matrix.py looks for it
    table.to_csv(
        model_dir.parent / f"{model_dir.name}_test_predictions_tta.csv",
        index=False,
        float_format="%.5g",
    )
    metrics = evaluate_predictions(table["true"], table["pred"]).to_dict()
    print(f"{model_dir.name}: test accuracy with 8-view TTA {metrics['accuracy']:.3f}", flush=True)
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("render", "train", "all"))
    parser.add_argument("--work", type=Path, required=True, help="Phantom datasets folder.")
    parser.add_argument("--out", type=Path, help="Results folder (train, all).")
    parser.add_argument("--n", type=int, default=N_TILES, help="Tiles to render (1777).")
    parser.add_argument(
        "--volumes",
        type=int,
        default=0,
        help="Also cut tiles (every 2.5 µm, 0–70 µm below the DEJ) from this many volumes.",
    )
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--bundled-epochs",
        type=int,
        default=15,
        help="Epoch cap of the bundled model (CPU budget).",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=300.0,
        help="Wall-clock cap (s) per experiment with the paper schedule.",
    )
    parser.add_argument("--only", nargs="*", help="Train only these experiments.")
    args = parser.parse_args(argv)
    if args.step in ("render", "all"):
        render(args.work, n=args.n, seed=args.seed, jobs=args.jobs, volumes=args.volumes)
    if args.step in ("train", "all"):
        if args.out is None:
            parser.error("--out is required for train")
        train(
            args.work,
            args.out,
            device=args.device,
            jobs=args.jobs,
            seed=args.seed,
            bundled_epochs=args.bundled_epochs,
            max_time=args.max_time,
            only=args.only,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
