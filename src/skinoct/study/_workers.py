"""How a study splits the CPUs: worker processes × threads per worker (``workers='auto'``).

A volume analysis has stages that use several threads well (the U-Net, the grading
network) and stages that run on one (reading, morphometry, tiles, figures). Several
worker processes overlap one volume's single-threaded stages with another's inference;
each process costs its own memory (libraries, models, the volume's working arrays).
:func:`plan_workers` turns ``workers`` (``'auto'``, a number of processes, or 0 = in this
process) into a :class:`WorkerPlan` and says which rule chose it; the plan is recorded
in ``study.json``. The executors give each worker its thread share
(:func:`thread_environment`, :func:`apply_thread_budget`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinoct.errors import InputError

__all__ = [
    "THREAD_VARIABLES",
    "WorkerPlan",
    "apply_thread_budget",
    "available_cpus",
    "available_memory_mb",
    "estimate_worker_memory_mb",
    "plan_workers",
    "thread_environment",
]

#: Environment variables that give a worker process its thread share: OpenMP (torch,
#: oneDNN), MKL and OpenBLAS (NumPy / SciPy); :func:`skinoct.models.default_threads`
#: reads ``OMP_NUM_THREADS`` for the onnxruntime and OpenVINO runners.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: Threads per worker on machines with more than 2 CPUs (2–4 by the rule below).
THREADS_PER_WORKER = 2
#: Resident memory of a worker before any volume: Python, NumPy, torch, MONAI, both
#: models (≈ 520 MB measured after the imports, BENCHMARKS.md "Volume analysis").
BASE_WORKER_MB = 600.0
#: Resident memory per voxel of the largest volume: a study worker analysing default
#: 300 × 500 × 1200 µm volumes (1.8e8 voxels) peaked at 2.4 GB (BENCHMARKS.md "Studies");
#: 600 MB + 11 B/voxel = 2.5 GB.
WORKER_BYTES_PER_VOXEL = 11.0
#: Memory left to the system and the parent process when planning.
RESERVE_MB = 1024.0


@dataclass(frozen=True)
class WorkerPlan:
    """Worker processes and threads per worker of a study run.

    Attributes
    ----------
    processes : int
        Worker processes (0: everything runs in the calling process).
    threads : int
        Threads each worker uses (torch, onnxruntime, OpenVINO, BLAS).
    cpus : int
        CPUs this process may use.
    requested : str
        What was asked for (``'auto'`` or the number of processes).
    rule : str
        Why this split, in plain words.
    memory_per_worker_mb : float or None
        The estimate that bounded the number of processes (None: not used).
    """

    processes: int
    threads: int
    cpus: int
    requested: str
    rule: str
    memory_per_worker_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory_mb() -> float | None:
    """``MemAvailable`` of ``/proc/meminfo`` in MB (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate_worker_memory_mb(volumes: Sequence[str | Path]) -> float:
    """Peak resident memory of one worker analysing the largest of ``volumes``, in MB.

    :data:`BASE_WORKER_MB` + :data:`WORKER_BYTES_PER_VOXEL` × the voxels of the largest
    input (by size on disk; its shape read from the file header). A volume that cannot
    be read counts as the default 300 × 500 × 1200 volume: the analysis reports it.
    """
    voxels = 300 * 500 * 1200
    sized = [(_size_on_disk(Path(v)), Path(v)) for v in volumes]
    if sized:
        path = max(sized, key=lambda item: item[0])[1]
        try:
            import warnings

            from skinoct.io import read_volume

            with warnings.catch_warnings():  # spacing or orientation: the analysis says it
                warnings.simplefilter("ignore")
                shape = read_volume(path, mmap=True).shape
            voxels = int(shape[0]) * int(shape[1]) * int(shape[2])
        except Exception:  # unreadable here: the worker reports it as that subject's error
            pass
    return BASE_WORKER_MB + WORKER_BYTES_PER_VOXEL * voxels / 2**20


def _size_on_disk(path: Path) -> int:
    try:
        if path.is_dir():  # OME-Zarr, slice folders
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def plan_workers(
    workers: int | str | None = "auto",
    *,
    n_tasks: int,
    cpus: int | None = None,
    memory_mb: float | None = None,
    memory_per_worker_mb: float | None = None,
) -> WorkerPlan:
    """Worker processes × threads per worker for ``n_tasks`` volumes.

    Parameters
    ----------
    workers : 'auto', int or None
        ``'auto'`` (or None): the rule below. An int ``n ≥ 1``: ``n`` processes (at most
        one per task) sharing the CPUs, ``cpus // n`` threads each (at least 1).
        ``0``: in this process, with all its threads.
    n_tasks : int
        Volumes to analyse.
    cpus : int, optional
        CPUs to share (default :func:`available_cpus`).
    memory_mb : float, optional
        Memory available to the workers (default :func:`available_memory_mb` less
        :data:`RESERVE_MB`); with ``memory_per_worker_mb`` it bounds the processes.
    memory_per_worker_mb : float, optional
        Peak memory of one worker (:func:`estimate_worker_memory_mb`).

    Returns
    -------
    WorkerPlan

    Notes
    -----
    The ``'auto'`` rule (measured on 2 cores, BENCHMARKS.md "Studies"):

    - **≤ 2 CPUs**: one process per CPU, one thread each (on 2 cores, 2 × 1 analysed
      1.4× more default-size phantom volumes per hour than 1 × 2 threads, 1.15–1.7× in
      two rounds: most stages of an analysis run on one thread, and the second thread
      speeds up only the networks);
    - **more CPUs**: ``cpus // 2`` processes of 2 threads; when memory or the number of
      volumes allows fewer processes, the threads grow to ``cpus // processes`` (up to
      4 per process while memory is not the bound, so one volume's inference still
      uses the cores the others leave).

    Raises
    ------
    InputError
        ``workers`` neither ``'auto'`` nor an integer ≥ 0.
    """
    cpus = available_cpus() if cpus is None else max(1, int(cpus))
    n_tasks = max(1, int(n_tasks))
    requested = "auto" if workers is None else str(workers).strip().lower()
    if requested != "auto":
        try:
            n = int(requested)
        except ValueError:
            n = -1
        if n < 0 or isinstance(workers, bool):
            raise InputError(f"workers must be 'auto' or an integer ≥ 0, got {workers!r}")
        if n == 0:
            return WorkerPlan(0, cpus, cpus, requested, "in this process (workers=0)")
        n = min(n, n_tasks)
        return WorkerPlan(
            n, max(1, cpus // n), cpus, requested, f"{n} process(es) as asked, CPUs shared"
        )
    return _auto(cpus, n_tasks, memory_mb, memory_per_worker_mb)


def _auto(cpus: int, n_tasks: int, memory_mb, per_worker_mb) -> WorkerPlan:
    if memory_mb is None and per_worker_mb is not None:
        free = available_memory_mb()
        memory_mb = None if free is None else max(0.0, free - RESERVE_MB)
    by_memory = cpus
    if memory_mb is not None and per_worker_mb:
        by_memory = max(1, int(memory_mb // per_worker_mb))
    if cpus <= 2:
        base, rule = 1, "≤ 2 CPUs: one process per CPU, 1 thread each"
    else:
        base, rule = THREADS_PER_WORKER, f"{cpus} CPUs: processes of {THREADS_PER_WORKER} threads"
    processes = max(1, min(cpus // base, n_tasks, by_memory))
    if processes == by_memory and by_memory < min(cpus // base, n_tasks):
        threads = max(1, cpus // processes)  # memory-bound: the few workers take all cores
        rule += f", {processes} by memory (≈ {per_worker_mb:.0f} MB each)"
    else:
        threads = max(base, min(cpus // processes, 4 if cpus > 2 else cpus))
        if processes < cpus // base:
            rule += f", {processes} for {n_tasks} volume(s)"
    return WorkerPlan(processes, threads, cpus, "auto", rule, per_worker_mb)


def apply_thread_budget(threads: int) -> None:
    """Give this process ``threads`` threads: the environment (for libraries not yet
    loaded and :func:`skinoct.models.default_threads`) and torch, when already imported."""
    import sys

    for var in THREAD_VARIABLES:
        os.environ[var] = str(int(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))


@contextmanager
def thread_environment(threads: int) -> Iterator[None]:
    """Set :data:`THREAD_VARIABLES` to ``threads`` while worker processes are spawned
    (a spawned process starts with its parent's environment), then restore them."""
    saved = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    try:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(int(threads))
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
