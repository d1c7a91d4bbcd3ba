"""Run a cohort: validate the manifest, analyse every volume, collect the tables.

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
retries failed ones. One failing volume never stops the others.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinoct._version import __version__
from skinoct.errors import InputError
from skinoct.io import atomic_path, write_json

__all__ = [
    "MANIFEST_COLUMNS",
    "OPTIONAL_COLUMNS",
    "Manifest",
    "ManifestError",
    "StudyResult",
    "SubjectTask",
    "collect_results",
    "input_hash",
    "read_manifest",
    "resolve_function",
    "run_study",
]

#: Required manifest columns.
MANIFEST_COLUMNS = ("subject", "group", "volume")
#: Optional manifest columns: a DEJ (file of depths in µm per (y, x), or one depth in
#: µm), and the site and visit, carried into the tables.
OPTIONAL_COLUMNS = ("dej", "site", "visit")
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +=@-]*$")
_META_COLUMNS = ("site", "visit")


class ManifestError(InputError):
    """A manifest with problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str], *, path: str | Path | None = None) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(
            f"{n} problem{'s' if n > 1 else ''} in the manifest: " + "; ".join(problems), path=path
        )


@dataclass(frozen=True)
class SubjectTask:
    """One subject's work order (picklable; sent to the worker)."""

    subject: str
    group: str
    volume: Path
    dej: float | Path | None = None
    meta: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    input_hash: str = ""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: one :class:`SubjectTask` per row, in file order."""

    path: Path | None
    tasks: tuple[SubjectTask, ...]
    columns: tuple[str, ...]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(t.group for t in self.tasks))


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


# ---------------------------------------------------------------------------- manifest


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a study manifest (CSV).

    Columns ``subject, group, volume`` and optionally ``dej, site, visit`` (names are
    case-insensitive). Relative paths are relative to the manifest's folder. Every
    problem is collected before raising, so one run of the command lists them all.

    Raises
    ------
    ManifestError
        Unreadable file, missing or unknown columns, empty cells, subject IDs that are
        not usable as file names, duplicate subjects, volume or DEJ files that do not
        exist, DEJ values that are neither a file nor a depth in µm.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError("manifest not found", path=path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError([f"cannot read CSV: {str(exc).splitlines()[0]}"], path=path) from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    problems: list[str] = []
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [c for c in df.columns if c not in MANIFEST_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        problems.append(
            f"unknown column(s): {', '.join(unknown)} (allowed: "
            f"{', '.join(MANIFEST_COLUMNS + OPTIONAL_COLUMNS)})"
        )
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        problems.append(f"column(s) given twice: {', '.join(dup_cols)}")
    if missing or dup_cols:
        raise ManifestError(problems, path=path)
    if df.empty:
        raise ManifestError([*problems, "no subjects (the table has no rows)"], path=path)
    base = path.parent
    tasks, seen = [], {}
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2  # CSV line as a user sees it
        subject = str(row["subject"]).strip()
        group = str(row["group"]).strip()
        volume_text = str(row["volume"]).strip()
        where = f"line {line}" + (f" ({subject})" if subject else "")
        if not subject:
            problems.append(f"line {line}: empty subject")
        elif not _SUBJECT_RE.match(subject) or subject in (".", ".."):
            problems.append(
                f"{where}: subject ID must start with a letter or digit and hold only letters, "
                "digits, space and ._+=@- (it names files)"
            )
        elif subject in seen:
            problems.append(f"{where}: duplicate subject (first on line {seen[subject]})")
        else:
            seen[subject] = line
        if not group:
            problems.append(f"{where}: empty group")
        volume = None
        if not volume_text:
            problems.append(f"{where}: empty volume")
        else:
            volume = (base / volume_text).resolve()
            if not volume.exists():
                problems.append(f"{where}: volume not found: {volume_text}")
        dej: float | Path | None = None
        dej_text = str(row.get("dej", "")).strip()
        if dej_text:
            try:
                dej = float(dej_text)
            except ValueError:
                dej = (base / dej_text).resolve()
                if not dej.is_file():
                    problems.append(f"{where}: dej is neither a depth in µm nor a file: {dej_text}")
            else:
                if not math.isfinite(dej) or dej < 0:
                    problems.append(f"{where}: dej depth must be ≥ 0 µm, got {dej_text}")
        meta = {c: str(row[c]).strip() for c in _META_COLUMNS if c in row}
        if volume is not None:
            tasks.append(
                SubjectTask(subject=subject, group=group, volume=volume, dej=dej, meta=meta)
            )
    if problems:
        raise ManifestError(problems, path=path)
    return Manifest(path=path, tasks=tuple(tasks), columns=tuple(df.columns))


# ---------------------------------------------------------------------------- hashing


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, sorted)."""
    if path.is_file():
        return _sha256_file(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        digest.update(_sha256_file(f).encode())
    return digest.hexdigest()


def input_hash(task: SubjectTask, *, function: str, options: dict, fingerprint: dict) -> str:
    """The hash that decides whether a subject's stored result is still valid.

    SHA-256 over the volume's bytes, the DEJ input (value or file bytes), the
    function's name, the analysis options, the model fingerprint and the skinoct
    version.
    """
    dej: Any = task.dej
    if isinstance(dej, Path):
        dej = {"file_sha256": _sha256_file(dej)}
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


# ---------------------------------------------------------------------------- workers


def _init_worker(threads: int) -> None:
    """Pool initializer: one BLAS/torch thread budget per worker process."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _call(fn: Callable, task: SubjectTask, options: dict) -> dict[str, Any]:
    """Run ``fn`` on one task; never raises an ``Exception`` (a failure is a result)."""
    start = time.perf_counter()
    try:
        if task.out_dir is None:
            raise ValueError(f"task of subject {task.subject!r} has no out_dir")
        task.out_dir.mkdir(parents=True, exist_ok=True)
        result = fn(task.volume, out_dir=task.out_dir, dej=task.dej, **options)
        result = _check_result(result)
    except Exception as exc:
        text = str(exc).strip().replace("\n", " ") or type(exc).__name__
        return {
            "status": "failed",
            "error": text if isinstance(exc, InputError) else f"{type(exc).__name__}: {text}",
            "traceback": traceback.format_exc(),
            "duration_s": time.perf_counter() - start,
        }
    return {"status": "ok", "result": result, "duration_s": time.perf_counter() - start}


def _check_result(result) -> dict:
    if not isinstance(result, dict) or "score" not in result:
        raise TypeError("the per-volume function must return a dict with a 'score'")
    from skinoct.io import json_safe

    safe = json_safe(result)
    score = safe.get("score")
    if score is not None and not isinstance(score, (int, float)):
        raise TypeError(f"'score' must be a number, got {score!r}")
    profile = safe.get("profile")
    if profile is not None:
        if not isinstance(profile, dict):
            raise TypeError("'profile' must be a dict with depth_um and score lists")
        if len(profile.get("depth_um", [])) != len(profile.get("score", [])):
            raise ValueError("profile depth_um and score differ in length")
    return safe


# ---------------------------------------------------------------------------- running


def _record_path(out_dir: Path, subject: str) -> Path:
    return out_dir / "subjects" / f"{subject}.json"


def _load_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_study(
    manifest: str | Path | Manifest,
    out_dir: str | Path,
    *,
    function: str | Callable | None = None,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
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
    workers : int, optional
        Local worker processes (default: the number of CPUs, at most the number of
        subjects to do). ``0`` runs everything in this process. Workers are
        *spawned* (safe with torch and OpenMP already loaded), so a script that calls
        this function must guard its entry point with ``if __name__ == "__main__":``.
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
    if workers is not None and workers < 0:
        raise InputError(f"workers must be ≥ 0, got {workers}")
    name = _function_name(fn)
    fingerprint = _fingerprint(fn, options)
    (out_dir / "subjects").mkdir(parents=True, exist_ok=True)

    todo: list[SubjectTask] = []
    skipped: list[str] = []
    for task in manifest.tasks:
        h = input_hash(task, function=name, options=options, fingerprint=fingerprint)
        task = SubjectTask(
            **{**task.__dict__, "out_dir": out_dir / "subjects" / task.subject, "input_hash": h}
        )
        old = _load_record(_record_path(out_dir, task.subject))
        if old is not None and old.get("status") == "ok" and old.get("input_hash") == h:
            skipped.append(task.subject)
        else:
            todo.append(task)

    computed: list[str] = []

    def store(task: SubjectTask, outcome: dict) -> None:
        record = {
            "subject": task.subject,
            "group": task.group,
            **{k: v for k, v in task.meta.items()},
            "volume": str(task.volume),
            "dej": str(task.dej) if task.dej is not None else None,
            "input_hash": task.input_hash,
            "function": name,
            "options": options,
            "models": fingerprint,
            "skinoct_version": __version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **outcome,
        }
        write_json(_record_path(out_dir, task.subject), record)
        computed.append(task.subject)
        if on_result is not None:
            on_result(task.subject, record)

    stream = _execute(
        todo, fn, options, workers=workers, scheduler=scheduler, timeout_s=connect_timeout_s
    )
    total = len(todo)
    if progress is not None and total:
        stream = progress(stream, description=f"{total} subject(s)", total=total)
    for task, outcome in stream:
        store(task, outcome)

    result = collect_results(manifest, out_dir, computed=computed, skipped=skipped)
    _write_summary(
        out_dir,
        manifest,
        result,
        name=name,
        options=options,
        fingerprint=fingerprint,
        workers=workers,
        scheduler=scheduler,
    )
    return result


def _execute(
    tasks: list[SubjectTask],
    fn: Callable,
    options: dict,
    *,
    workers: int | None,
    scheduler,
    timeout_s: float,
) -> Iterator[tuple[SubjectTask, dict]]:
    if not tasks:
        return iter(())
    if scheduler is not None:
        client = _connect(scheduler, timeout_s)  # fails here, before any work
        return _run_dask(tasks, fn, options, client, own=client is not scheduler)
    n = (os.cpu_count() or 1) if workers is None else workers
    n = min(n, len(tasks))
    if n == 0:
        return ((t, _call(fn, t, options)) for t in tasks)
    return _run_pool(tasks, fn, options, workers=n)


def _run_pool(tasks, fn, options, *, workers: int):
    """Local processes (spawned: safe with torch/OpenMP already loaded).

    If a worker process dies (killed, out of memory, a crash in native code), the pool
    breaks; the subjects not finished are then run again, each in a fresh process of
    its own, so that only the volume that kills its process is marked failed.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    pending: list[SubjectTask] = []
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(_call, fn, t, options): t for t in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                outcome = fut.result()
            except BrokenProcessPool:
                pending.append(task)
                continue
            yield task, outcome
    if not pending:
        return
    # Isolation: one process per subject, ``workers`` at a time.
    from collections import deque

    queue = deque(pending)
    running: dict = {}
    while queue or running:
        while queue and len(running) < workers:
            task = queue.popleft()
            pool = ProcessPoolExecutor(
                1, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
            )
            running[pool.submit(_call, fn, task, options)] = (task, pool)
        done = next(as_completed(list(running)))
        task, pool = running.pop(done)
        try:
            outcome = done.result()
        except BrokenProcessPool:
            outcome = {
                "status": "failed",
                "error": "the worker process died while analysing this volume "
                "(killed, out of memory, or a crash in native code)",
                "traceback": "",
                "duration_s": None,
            }
        pool.shutdown(wait=True)
        yield task, outcome


def _connect(scheduler, timeout_s: float):
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError(
            "--scheduler needs Dask distributed: pip install 'skinoct[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler
    try:
        return Client(str(scheduler), timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None


def _run_dask(tasks, fn, options, client, *, own: bool):
    from dask.distributed import as_completed

    try:
        futures = {
            client.submit(
                _call, fn, t, options, pure=False, key=f"skinoct-{t.subject}-{t.input_hash[:12]}"
            ): t
            for t in tasks
        }
        for fut in as_completed(list(futures), loop=client.loop):
            task = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # KilledWorker, lost connection, ...
                outcome = {
                    "status": "failed",
                    "error": f"Dask: {type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                    "duration_s": None,
                }
            yield task, outcome
    finally:
        if own:
            client.close()


# ---------------------------------------------------------------------------- collecting


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
        record = _load_record(_record_path(out_dir, task.subject))
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
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def _write_summary(out_dir, manifest, result, *, name, options, fingerprint, workers, scheduler):
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
