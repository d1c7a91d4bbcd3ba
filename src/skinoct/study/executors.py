"""Executors of a study: run the per-volume function on subjects, stream the outcomes.

Three ways, one contract: ``execute(tasks, fn, options, ...)`` yields ``(task, outcome)``
pairs as subjects finish, where ``outcome`` is ``{"status": "ok", "result": ...}`` or
``{"status": "failed", "error": ..., "traceback": ...}`` (a failure is a result, never
an exception): in this process (``plan.processes == 0``), in local spawned processes
with ``plan.threads`` threads each (one fresh process per subject after a worker dies),
or on a Dask cluster.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from skinoct.errors import InputError
from skinoct.study._workers import WorkerPlan, apply_thread_budget, thread_environment
from skinoct.study.manifest import SubjectTask

__all__ = ["call_task", "execute"]


def _init_worker(threads: int) -> None:
    """Pool initializer: one thread budget per worker process (torch, BLAS, the
    onnxruntime / OpenVINO runners: :func:`skinoct.models.default_threads`)."""
    apply_thread_budget(threads)


def call_task(fn: Callable, task: SubjectTask, options: dict) -> dict[str, Any]:
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


def execute(
    tasks: list[SubjectTask],
    fn: Callable,
    options: dict,
    *,
    plan: WorkerPlan | None,
    scheduler,
    timeout_s: float,
) -> Iterator[tuple[SubjectTask, dict]]:
    """Run ``fn`` on every task; yield ``(task, outcome)`` as subjects finish.

    ``plan`` (:func:`skinoct.study._workers.plan_workers`) gives the local processes
    and threads per process; it is ignored with a Dask ``scheduler``.
    """
    if not tasks:
        return iter(())
    if scheduler is not None:
        client = _connect(scheduler, timeout_s)  # fails here, before any work
        return _run_dask(tasks, fn, options, client, own=client is not scheduler)
    if plan.processes == 0:
        return ((t, call_task(fn, t, options)) for t in tasks)
    return _run_pool(
        tasks, fn, options, workers=min(plan.processes, len(tasks)), threads=plan.threads
    )


def _run_pool(tasks, fn, options, *, workers: int, threads: int):
    """Local processes (spawned: safe with torch/OpenMP already loaded).

    If a worker process dies (killed, out of memory, a crash in native code), the pool
    breaks; the subjects not finished are then run again, each in a fresh process of
    its own, so that only the volume that kills its process is marked failed.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    pending: list[SubjectTask] = []
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        with thread_environment(threads):  # the processes start on the first submissions
            futures = {pool.submit(call_task, fn, t, options): t for t in tasks}
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
            with thread_environment(threads):
                running[pool.submit(call_task, fn, task, options)] = (task, pool)
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
                call_task,
                fn,
                t,
                options,
                pure=False,
                key=f"skinoct-{t.subject}-{t.input_hash[:12]}",
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
