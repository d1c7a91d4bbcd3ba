"""Collection of a study: subject records → ``scores.csv``, ``profiles.csv``, ``study.json``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinoct._version import __version__
from skinoct.io import write_csv_table, write_json
from skinoct.study.manifest import _META_COLUMNS, Manifest

__all__ = ["StudyResult", "collect_results", "load_record", "record_path", "write_summary"]


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` did and collected.

    Attributes
    ----------
    out_dir : Path
    scores : pandas.DataFrame
        One row per successful subject: ``subject``, ``group`` (``site``, ``visit``),
        ``score``, metrics.
    profiles : pandas.DataFrame
        ``subject``, ``group``, ``depth_um``, ``score``.
    failures : list of dict
        ``subject``, ``group``, ``error`` for each failed subject.
    computed, skipped : list of str
        Subjects analysed in this run / taken from a previous run.
    """

    out_dir: Path
    scores: Any
    profiles: Any
    failures: list[dict[str, str]]
    computed: list[str]
    skipped: list[str]

    @property
    def n_failed(self) -> int:
        return len(self.failures)


def record_path(out_dir: Path, subject: str) -> Path:
    return out_dir / "subjects" / f"{subject}.json"


def load_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None



def collect_results(
    manifest: Manifest,
    out_dir: str | Path,
    *,
    computed: list[str] | None = None,
    skipped: list[str] | None = None,
) -> StudyResult:
    """Gather the subjects' records into ``scores.csv`` and ``profiles.csv``.

    Subjects appear in manifest order; a subject without a record or with a failed
    one is listed in ``failures`` (never silently dropped).
    """
    import pandas as pd

    out_dir = Path(out_dir)
    score_rows, profile_rows, failures = [], [], []
    for task in manifest.tasks:
        record = load_record(record_path(out_dir, task.subject))
        if record is None or record.get("status") != "ok":
            failures.append(
                {
                    "subject": task.subject,
                    "group": task.group,
                    "error": "not analysed" if record is None else str(record.get("error")),
                }
            )
            continue
        res = record["result"]
        score = res.get("score")
        row = {
            "subject": task.subject,
            "group": task.group,
            **task.meta,
            "score": math.nan if score is None else float(score),
        }
        for key, value in (res.get("metrics") or {}).items():
            if key not in row:
                row[key] = math.nan if value is None else value
        score_rows.append(row)
        prof = res.get("profile") or {}
        for d, s in zip(prof.get("depth_um", []), prof.get("score", []), strict=True):
            profile_rows.append(
                {
                    "subject": task.subject,
                    "group": task.group,
                    "depth_um": d,
                    "score": math.nan if s is None else s,
                }
            )
    scores = pd.DataFrame(score_rows, columns=_columns(score_rows, manifest))
    profiles = pd.DataFrame(profile_rows, columns=["subject", "group", "depth_um", "score"])
    _write_csv(out_dir / "scores.csv", scores)
    _write_csv(out_dir / "profiles.csv", profiles)
    return StudyResult(
        out_dir=out_dir,
        scores=scores,
        profiles=profiles,
        failures=failures,
        computed=list(computed or []),
        skipped=list(skipped or []),
    )


def _columns(rows: list[dict], manifest: Manifest) -> list[str]:
    cols = ["subject", "group", *[c for c in _META_COLUMNS if c in manifest.columns], "score"]
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)
    return cols


def _write_csv(path: Path, df) -> None:
    # text cells a spreadsheet would execute (=, +, -, @ …) are quoted; raw values stay in JSON
    write_csv_table(path, df, float_format="%.6g")


def write_summary(out_dir, manifest, result, *, name, options, fingerprint, workers, scheduler):
    import platform

    write_json(
        out_dir / "study.json",
        {
            "manifest": str(manifest.path) if manifest.path else None,
            "n_subjects": len(manifest.tasks),
            "n_ok": len(result.scores),
            "n_failed": result.n_failed,
            "groups": manifest.groups,
            "subjects": [[t.subject, t.group] for t in manifest.tasks],
            "failures": result.failures,
            "computed": result.computed,
            "skipped": result.skipped,
            "function": name,
            "options": options,
            "models": fingerprint,
            "workers": workers,
            "scheduler": None
            if scheduler is None
            else str(getattr(scheduler, "scheduler", scheduler)),
            "skinoct_version": __version__,
            "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
