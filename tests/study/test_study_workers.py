"""``workers='auto'``: the split of the CPUs between processes and threads, and its use."""

from __future__ import annotations

import json

import _study_fakes as fakes
import pandas as pd
import pytest

from skinoct.errors import InputError
from skinoct.study import WorkerPlan, plan_workers
from skinoct.study._workers import (
    BASE_WORKER_MB,
    WORKER_BYTES_PER_VOXEL,
    available_cpus,
    estimate_worker_memory_mb,
    thread_environment,
)
from skinoct.study.run import run_study

BIG = 1e9  # memory that bounds nothing


@pytest.mark.parametrize(
    ("cpus", "n_tasks", "memory_mb", "expected"),
    [
        # ≤ 2 CPUs (measured, BENCHMARKS.md "Studies"): one single-threaded process per CPU
        (2, 36, BIG, (2, 1)),
        (1, 36, BIG, (1, 1)),
        (2, 1, BIG, (1, 2)),  # one volume: one process with both threads
        (2, 36, 3000.0, (1, 2)),  # memory for one worker only: it takes both CPUs
        # more CPUs: processes of 2 threads
        (8, 36, BIG, (4, 2)),
        (16, 36, BIG, (8, 2)),
        (16, 3, BIG, (3, 4)),  # few volumes: up to 4 threads each
        (16, 36, 6000.0, (3, 5)),  # memory for 3 workers: they share all 16 CPUs
        (3, 36, BIG, (1, 3)),
    ],
)
def test_auto_rule(cpus, n_tasks, memory_mb, expected):
    plan = plan_workers(
        "auto", n_tasks=n_tasks, cpus=cpus, memory_mb=memory_mb, memory_per_worker_mb=2000.0
    )
    assert (plan.processes, plan.threads) == expected
    assert plan.processes * plan.threads <= cpus  # never more threads than CPUs
    assert plan.processes * 2000.0 <= memory_mb  # never more workers than memory holds
    assert plan.requested == "auto" and plan.rule and plan.memory_per_worker_mb == 2000.0


@pytest.mark.parametrize(
    ("workers", "expected"),
    [(0, (0, 4)), (1, (1, 4)), (3, (3, 1)), ("2", (2, 2)), (None, None), ("AUTO", None)],
)
def test_explicit_workers_share_the_cpus(workers, expected):
    plan = plan_workers(workers, n_tasks=10, cpus=4)
    if expected is None:  # None and 'auto' are the rule
        assert plan == plan_workers("auto", n_tasks=10, cpus=4)
    else:
        assert (plan.processes, plan.threads) == expected
    assert plan_workers(8, n_tasks=2, cpus=4).processes == 2  # at most one per volume


@pytest.mark.parametrize("bad", [-1, "many", 1.5, True])
def test_bad_workers_are_refused(bad):
    with pytest.raises(InputError, match="workers must be 'auto' or an integer ≥ 0"):
        plan_workers(bad, n_tasks=3)


def test_memory_estimate_follows_the_largest_volume(tmp_path):
    import numpy as np

    small, large = tmp_path / "small.npy", tmp_path / "large.npy"
    np.save(small, np.zeros((4, 5, 6), np.uint16))
    np.save(large, np.zeros((10, 20, 30), np.uint16))
    want = BASE_WORKER_MB + WORKER_BYTES_PER_VOXEL * 10 * 20 * 30 / 2**20
    assert estimate_worker_memory_mb([small, large]) == pytest.approx(want)
    # unreadable: the default 300 × 500 × 1200 volume (measured peak 2.4 GB)
    default = estimate_worker_memory_mb([tmp_path / "missing.tif"])
    assert 2400 < default < 3000


def test_thread_environment_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    import os

    with thread_environment(2):
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "2"
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def test_the_plan_is_recorded_in_study_json(tmp_path):
    manifest = fakes.make_cohort(tmp_path)
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    recorded = json.loads((tmp_path / "s" / "study.json").read_text())["workers"]
    assert recorded["processes"] == 0 and recorded["requested"] == "0"
    assert recorded["threads"] == available_cpus()
    assert WorkerPlan(**recorded) == plan_workers(0, n_tasks=6)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_worker_uses_its_thread_share(tmp_path, workers):
    """The spawned workers run with the plan's threads: torch, OMP_NUM_THREADS and the
    default of the onnxruntime / OpenVINO runners."""
    manifest = fakes.make_cohort(tmp_path, per_group=1)
    result = run_study(manifest, tmp_path / "s", function="_study_fakes:thread_report",
                       workers=workers)  # fmt: skip
    plan = json.loads((tmp_path / "s" / "study.json").read_text())["workers"]
    assert plan["processes"] == workers and plan["threads"] == max(1, available_cpus() // workers)
    scores = result.scores
    assert len(scores) == 3
    for column in ("torch_threads", "omp_num_threads", "runner_threads"):
        assert (scores[column] == plan["threads"]).all(), scores[column].tolist()


def test_cli_workers_auto_is_the_default(tmp_path, run_cli):
    manifest = fakes.make_cohort(tmp_path, per_group=1)
    code, _, err = run_cli(
        "-q", "study", "run", manifest, "--out", tmp_path / "s", "--no-report",
        "--function", "_study_fakes:fake_analysis",
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads((tmp_path / "s" / "study.json").read_text())["workers"]
    assert plan["requested"] == "auto"
    assert plan["processes"] * plan["threads"] <= available_cpus()
    assert len(pd.read_csv(tmp_path / "s" / "scores.csv")) == 3
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "t", "--workers", "x")
    assert code == 2 and "--workers must be auto or an integer" in err
