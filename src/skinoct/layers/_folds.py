"""Cross-validation bookkeeping of :func:`skinoct.layers.train_layers`.

Subject-grouped folds, the run's fingerprint and its claim on the output folder (so
that a rerun resumes and another run is refused), a finished final model found again,
and the CV report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import InputError
from skinoct.io import LABEL_NAMES, write_json
from skinoct.layers._data import LayerDataset
from skinoct.layers._metrics import summarize_dice
from skinoct.layers._model import LayersModel, load_layers_model
from skinoct.models import check_config

__all__ = ["grouped_folds"]

#: Config fields that do not change what a run computes (not in its fingerprint).
RUN_ONLY = ("device", "num_workers", "time_budget_s")


def grouped_folds(subjects: Sequence[str], n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, validation)`` index arrays of k folds that never split a subject.

    Uses :class:`sklearn.model_selection.GroupKFold` (deterministic, balanced fold
    sizes).

    Raises
    ------
    InputError
        With fewer distinct subjects than folds.
    """
    from sklearn.model_selection import GroupKFold

    subjects = np.asarray(subjects)
    n_groups = len(np.unique(subjects))
    if n_groups < n_folds:
        raise InputError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} subjects, "
            f"the dataset has {n_groups}"
        )
    splitter = GroupKFold(n_splits=n_folds)
    index = np.arange(len(subjects))
    return [(tr, va) for tr, va in splitter.split(index, groups=subjects)]


def splits(subjects, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """CV splits; ``folds=1``: the first of five subject-grouped folds (80/20 hold-out)."""
    if folds == 0:
        return []
    if folds == 1:
        n = min(5, len(set(subjects)))
        check_config(n >= 2, "a hold-out split (folds=1) needs at least 2 subjects")
        return grouped_folds(subjects, n)[:1]
    return grouped_folds(subjects, folds)


def dataset_summary(dataset: LayerDataset) -> dict[str, Any]:
    """The dataset as recorded in the manifest and the CV report."""
    return {
        "path": str(dataset.root),
        "n_sections": len(dataset),
        "n_subjects": len(set(dataset.subjects)),
        "grouped_by_subject": dataset.grouped,
        "label_values": list(dataset.label_values),
    }


def check_labels_occur(dataset: LayerDataset, sections) -> None:
    """Every declared label occurs in some mask (else the labels were declared wrongly)."""
    seen = np.zeros(len(dataset.label_values), bool)
    for s in sections:
        present = np.unique(s.target)
        seen[present[present < len(seen)]] = True  # not 255 (indeterminate)
    absent = [dataset.label_values[i] for i in np.flatnonzero(~seen)]
    if absent:
        names = ", ".join(f"{v}={LABEL_NAMES[v]}" for v in absent)
        raise InputError(
            f"label(s) {names} never occur in any mask; declare the labels that are "
            'annotated in dataset.json, e.g. {"labels": [0, 2, 3]}',
            path=dataset.root,
        )


def run_fingerprint(dataset: LayerDataset, config, base) -> str:
    """16 hex digits naming a run: config (without :data:`RUN_ONLY`), sections, init."""
    cfg = config.to_dict()
    for key in RUN_ONLY:
        cfg.pop(key, None)
    for added_later in ("layer_intensity", "resolution"):  # runs without keep their names
        if not cfg.get(added_later):
            cfg.pop(added_later, None)
    cfg.pop("levels", None)  # the resolved network, part of the config, says it
    payload = {
        "config": cfg,
        "sections": [[r.id, r.subject] for r in dataset.records],
        "labels": list(dataset.label_values),
        "init": None if base is None else base.weights_sha256,
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_out_dir(out_dir: Path, folds_dir: Path, fingerprint: str, *, restart: bool) -> None:
    """Claim ``out_dir`` for this run, or check that it holds this run's folds."""
    run_file = folds_dir / "run.json"
    if restart and folds_dir.exists():
        shutil.rmtree(folds_dir)
    if run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint")
        if previous != fingerprint:
            raise InputError(
                "holds folds of a different training run (other data or options); "
                "use another --out or --restart to discard them",
                path=out_dir,
            )
        return
    folds_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"fingerprint": fingerprint})


def existing_final(out_dir: Path, fingerprint: str) -> LayersModel | None:
    """The finished final model of this run in ``out_dir``, if there is one."""
    from skinoct.errors import ModelError

    if not (out_dir / "model.json").is_file():
        return None
    try:
        model = load_layers_model(out_dir)
    except ModelError:
        return None
    training = model.manifest.get("training", {})
    if training.get("fingerprint") != fingerprint or training.get("stopped_by_time"):
        return None  # another run's model, or one the time budget cut short
    return model


def cv_report(run, fold_results) -> dict[str, Any]:
    """The cross-validation report (``cv_report.json``) of the folds done so far."""
    dataset, config, fingerprint = run.dataset, run.config, run.fingerprint
    tissue = [LABEL_NAMES[v] for v in dataset.tissue_values]
    if fold_results:
        per_fold = [{n: r["dice"].get(n) for n in tissue} for r in fold_results]
        summary = summarize_dice(per_fold)
        best = [int(r["best_epoch"]) for r in fold_results]
        final_epochs = max(1, round(float(np.median(best))))
    else:
        summary, final_epochs = {}, config.epochs
    return {
        "fingerprint": fingerprint,
        "folds": [
            {k: v for k, v in r.items() if k not in ("sections", "history")} for r in fold_results
        ],
        "layers": tissue,
        "summary": summary,
        "final_epochs": final_epochs,
        "config": config.to_dict(),
        "recipe": run.recipe,
        "dataset": dataset_summary(dataset),
        "per_section": [s for r in fold_results for s in r.get("sections", [])],
    }
