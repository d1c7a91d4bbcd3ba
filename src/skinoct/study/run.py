"""Run a cohort: validate the manifest, analyse every volume, collect the tables.

The stages live in their own modules: :mod:`skinoct.study.manifest` (reading and
validating the CSV), :mod:`skinoct.study.executors` (in-process, local processes,
Dask) and :mod:`skinoct.study.collect` (records → tables); this module plans the
work (input hashes, resume) and ties them together. Its names stay importable here.

The per-volume work is pluggable: any function ``fn(volume, *, out_dir, dej, **options)
-> dict`` (default :func:`skinoct.study.analyze.analyze_volume`). Its result dict holds

``score``
    the volume's mean dermal-quality score (float; NaN = no score),
``profile`` (optional)
    ``{"depth_um": [...], "score": [...]}``, the depth profile below the DEJ,
``metrics`` (optional)
    flat ``{name: number}`` of layer metrics, one column each in ``scores.csv``,
``flags`` (optional)
    list of strings: reasons to review the volume (e.g. an uncertain DEJ),
``images`` (optional)
    ``{name: path}`` of figures for the report, relative to ``out_dir``,
``versions`` (optional)
    software and model versions.

Layout written in the study folder::

    DIR/subjects/<subject>.json   one record per subject: status, input hash, result
    DIR/subjects/<subject>/       that subject's analysis outputs
    DIR/scores.csv                subject, group[, site, visit], score, metrics…
    DIR/profiles.csv              subject, group, depth_um, score
    DIR/study.json                run summary: counts, failures, options, versions

Crash safety: a subject's record is written atomically as soon as it is done, so an
interrupted run loses at most the subjects in flight. A re-run skips subjects whose
record is ``ok`` with the same input hash (SHA-256 of the volume file, the DEJ input,
the analysis options, the model weights, the function and the skinoct version) and
retries failed ones, after removing the temp files (``.*.tmp*``) a killed run left.
One failing volume never stops the others. Text cells of the CSV tables that a
spreadsheet would execute are quoted (:func:`skinoct.io.safe_csv_cell`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skinoct._version import __version__
from skinoct.errors import InputError
from skinoct.io import remove_stale_temp_files, write_json
from skinoct.study._workers import WorkerPlan, estimate_worker_memory_mb, plan_workers
from skinoct.study.collect import (
    StudyResult,
    collect_results,
    load_record,
    record_path,
    write_summary,
)
from skinoct.study.executors import execute
from skinoct.study.manifest import (
    MANIFEST_COLUMNS,
    OPTIONAL_COLUMNS,
    Manifest,
    ManifestError,
    SubjectTask,
    read_manifest,
)

__all__ = [
    "MANIFEST_COLUMNS",
    "OPTIONAL_COLUMNS",
    "Manifest",
    "ManifestError",
    "StudyResult",
    "SubjectTask",
    "WorkerPlan",
    "collect_results",
    "input_hash",
    "read_manifest",
    "resolve_function",
    "run_study",
]


# ---------------------------------------------------------------------------- hashing


def _sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, sorted)."""
    from skinoct.models import sha256_file

    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


def input_hash(task: SubjectTask, *, function: str, options: dict, fingerprint: dict) -> str:
    """The hash that decides whether a subject's stored result is still valid.

    SHA-256 over the volume's bytes, the DEJ input (value or file bytes), the
    function's name, the analysis options, the model fingerprint and the skinoct
    version.
    """
    from skinoct.models import sha256_file

    dej: Any = task.dej
    if isinstance(dej, Path):
        dej = {"file_sha256": sha256_file(dej)}
    record = {
        "volume_sha256": _sha256_path(task.volume),
        "dej": dej,
        "function": function,
        "options": options,
        "models": fingerprint,
        "skinoct": __version__,
    }
    text = json.dumps(record, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- functions


def resolve_function(spec: str | Callable | None) -> Callable:
    """The per-volume function: a callable, ``'module:name'``, or None for the default.

    Raises
    ------
    InputError
        A spec that does not name an importable callable.
    """
    if spec is None:
        from skinoct.study.analyze import analyze_volume

        return analyze_volume
    if callable(spec):
        return spec
    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise InputError(f"function must be given as 'module:name', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import {spec!r}: {exc}") from None
    if not callable(obj):
        raise InputError(f"{spec!r} is not callable")
    return obj


def _function_name(fn: Callable) -> str:
    # Instances of callable classes are named by their class (a repr holds an address).
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{getattr(fn, '__module__', None) or type(fn).__module__}:{qualname}"


def _fingerprint(fn: Callable, options: dict) -> dict:
    """Model identities for the hash: ``fn.fingerprint(**options)`` when defined."""
    maker = getattr(fn, "fingerprint", None)
    return dict(maker(**options)) if callable(maker) else {}


def run_study(
    manifest: str | Path | Manifest,
    out_dir: str | Path,
    *,
    function: str | Callable | None = None,
    options: dict[str, Any] | None = None,
    workers: int | str | None = "auto",
    scheduler: Any = None,
    progress: Callable[..., Iterable] | None = None,
    on_result: Callable[[str, dict], None] | None = None,
    connect_timeout_s: float = 10.0,
) -> StudyResult:
    """Analyse every subject of a manifest and collect ``scores.csv`` / ``profiles.csv``.

    Parameters
    ----------
    manifest : str, Path or Manifest
        The manifest CSV (validated with :func:`read_manifest`).
    out_dir : str or Path
        Study folder (see the module docstring for its layout).
    function : callable or 'module:name', optional
        Per-volume function; default :func:`skinoct.study.analyze.analyze_volume`.
        With processes or Dask it must be importable (defined at module level).
    options : dict, optional
        Keyword options passed to ``function`` (JSON-serialisable: they enter the
        input hash).
    workers : 'auto', int or None
        Local worker processes. ``'auto'`` (default; None means the same) splits the
        CPUs between processes and threads per process by a measured rule, bounded
        by the memory one worker needs (:func:`skinoct.study.plan_workers`);
        an int ``n`` runs ``n`` processes (at most one per subject to do) with
        ``CPUs // n`` threads each; ``0`` runs everything in this process. The split
        is recorded in ``study.json`` (``workers``). Workers are *spawned* (safe with
        torch and OpenMP already loaded), so a script that calls this function must
        guard its entry point with ``if __name__ == "__main__":``.
    scheduler : str or dask.distributed.Client, optional
        Address (``tcp://host:8786``) of a running Dask scheduler, or a client: run
        the subjects on that cluster instead of local processes. Volumes and
        ``out_dir`` must be on a file system the workers see.
    progress : callable, optional
        ``progress(iterable, description=..., total=...)`` wrapping the stream of
        finished subjects (e.g. :func:`skinoct.cli._common.progress`).
    on_result : callable, optional
        Called as ``on_result(subject, record)`` after each subject is stored.
    connect_timeout_s : float
        How long to try to reach ``scheduler``.

    Returns
    -------
    StudyResult

    Raises
    ------
    ManifestError
        Problems in the manifest (before any work starts).
    InputError
        Bad ``function``, ``workers`` or an unreachable scheduler.
    """
    out_dir = Path(out_dir)
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    fn = resolve_function(function)
    options = dict(options or {})
    plan_workers(workers, n_tasks=1)  # a bad value fails here, before any work
    name = _function_name(fn)
    fingerprint = _fingerprint(fn, options)
    (out_dir / "subjects").mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)  # left by a killed run; nothing of ours is writing yet

    todo, skipped = _plan(manifest, out_dir, name=name, options=options, fingerprint=fingerprint)
    plan = _worker_plan(workers, todo, scheduler)
    stream = execute(todo, fn, options, plan=plan, scheduler=scheduler, timeout_s=connect_timeout_s)
    if progress is not None and todo:
        stream = progress(stream, description=f"{len(todo)} subject(s)", total=len(todo))
    computed: list[str] = []
    for task, outcome in stream:
        record = _store(out_dir, task, outcome, name=name, options=options, fp=fingerprint)
        computed.append(task.subject)
        if on_result is not None:
            on_result(task.subject, record)

    result = collect_results(manifest, out_dir, computed=computed, skipped=skipped)
    write_summary(
        out_dir,
        manifest,
        result,
        name=name,
        options=options,
        fingerprint=fingerprint,
        workers=None if plan is None else plan.to_dict(),
        scheduler=scheduler,
    )
    return result


def _worker_plan(workers, todo: list[SubjectTask], scheduler) -> WorkerPlan | None:
    """The local split of the CPUs (None on a Dask cluster, which has its own)."""
    if scheduler is not None:
        return None
    memory = None
    if str(workers).strip().lower() in ("auto", "none") and todo:
        memory = estimate_worker_memory_mb([t.volume for t in todo])
    return plan_workers(workers, n_tasks=len(todo), memory_per_worker_mb=memory)


def _plan(manifest: Manifest, out_dir: Path, *, name: str, options: dict, fingerprint: dict):
    """Subjects to analyse (with their input hash and output folder) and those to skip.

    A subject is skipped when its stored record is ``ok`` with the same input hash.
    """
    todo: list[SubjectTask] = []
    skipped: list[str] = []
    # the volumes' hashes (0.65 s for a default volume) on two threads: hashlib and
    # file reads release the GIL, so a 36-volume study waits half as long to start
    tasks = list(manifest.tasks)
    with ThreadPoolExecutor(min(2, max(1, len(tasks)))) as pool:
        hashes = list(
            pool.map(
                lambda t: input_hash(t, function=name, options=options, fingerprint=fingerprint),
                tasks,
            )
        )
    for task, h in zip(tasks, hashes, strict=True):
        task = SubjectTask(
            **{**task.__dict__, "out_dir": out_dir / "subjects" / task.subject, "input_hash": h}
        )
        old = load_record(record_path(out_dir, task.subject))
        if old is not None and old.get("status") == "ok" and old.get("input_hash") == h:
            skipped.append(task.subject)
        else:
            todo.append(task)
    return todo, skipped


def _store(out_dir: Path, task: SubjectTask, outcome: dict, *, name, options, fp) -> dict:
    """Write one subject's record (atomically) as soon as it is done; return it."""
    record = {
        "subject": task.subject,
        "group": task.group,
        **{k: v for k, v in task.meta.items()},
        "volume": str(task.volume),
        "dej": str(task.dej) if task.dej is not None else None,
        "input_hash": task.input_hash,
        "function": name,
        "options": options,
        "models": fp,
        "skinoct_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **outcome,
    }
    write_json(record_path(out_dir, task.subject), record)
    return record
