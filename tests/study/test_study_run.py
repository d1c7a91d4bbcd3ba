"""Cohort pipeline: manifest validation, local/Dask execution, crash safety, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _study_fakes as fakes
import numpy as np
import pandas as pd
import pytest

from skinoct.errors import InputError
from skinoct.study.run import ManifestError, read_manifest, run_study

make_cohort = fakes.make_cohort


def expected_scores(manifest: Path) -> dict[str, float]:
    df = pd.read_csv(manifest)
    return {
        s: fakes.expected_score(np.load(manifest.parent / v))
        for s, v in zip(df.subject, df.volume, strict=True)
    }


# ------------------------------------------------------------------------ manifest


def test_manifest_lists_every_problem_at_once(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"")
    (tmp_path / "manifest.csv").write_text(
        "subject,group,volume,dej,Operator\n"
        "s1,young,a.npy,40,x\n"
        "s1,old,a.npy,,y\n"  # duplicate subject
        "s2,,missing.tif,,z\n"  # empty group, missing volume
        "../s3,old,a.npy,nowhere.npy,w\n"  # unsafe subject id, bad dej
        "s4,old,a.npy,-3,v\n"  # negative dej
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path / "manifest.csv")
    problems = info.value.problems
    text = " | ".join(problems)
    assert len(problems) == 7, text
    assert "unknown column(s): operator" in text
    assert "line 3 (s1): duplicate subject (first on line 2)" in text
    assert "line 4 (s2): empty group" in text
    assert "volume not found: missing.tif" in text
    assert "subject ID must start" in text
    assert "dej is neither a depth in µm nor a file: nowhere.npy" in text
    assert "dej depth must be ≥ 0 µm" in text


def test_manifest_ok_resolves_paths_and_dej(tmp_path):
    manifest = make_cohort(tmp_path, per_group=1)
    df = pd.read_csv(manifest)
    np.save(tmp_path / "dej.npy", np.zeros((4, 5)))
    df["dej"] = ["40", "dej.npy", ""]
    df["site"] = "cheek"
    df.to_csv(manifest, index=False)
    m = read_manifest(manifest)
    assert [t.subject for t in m.tasks] == ["young00", "old00", "photo00"]
    assert m.tasks[0].dej == 40.0
    assert m.tasks[1].dej == (tmp_path / "dej.npy").resolve()
    assert m.tasks[2].dej is None
    assert m.tasks[0].volume == (tmp_path / "volumes" / "young00.npy").resolve()
    assert m.tasks[0].meta == {"site": "cheek"}
    assert m.groups == ["young", "old", "photo"]


def test_cli_manifest_problems_exit_2(run_cli, tmp_path):
    (tmp_path / "manifest.csv").write_text("subject,group,volume\ns1,a,no.tif\ns1,b,no2.tif\n")
    code, out, err = run_cli("study", "run", tmp_path / "manifest.csv", "--out", tmp_path / "o")
    assert code == 2
    assert "volume not found: no.tif" in err and "duplicate subject" in err
    assert "3 problems in the manifest" in err
    assert not (tmp_path / "o" / "subjects").exists()  # nothing started


# ------------------------------------------------------------------------ running


def test_run_in_process_tables_failures_and_retry(tmp_path):
    manifest = make_cohort(tmp_path)
    fail_file = tmp_path / "fail.txt"
    fail_file.write_text("old01")
    log = tmp_path / "log"
    options = {"log_dir": str(log), "fail_file": str(fail_file)}
    out = tmp_path / "study"
    res = run_study(manifest, out, function=fakes.fake_analysis, options=options, workers=0)

    expected = expected_scores(manifest)
    scores = pd.read_csv(out / "scores.csv")
    assert scores["subject"].tolist() == [s for s in expected if s != "old01"]
    np.testing.assert_allclose(
        scores["score"], [v for s, v in expected.items() if s != "old01"], rtol=1e-6
    )
    np.testing.assert_allclose(scores["epidermis_thickness_um"], 50 + scores["score"], rtol=1e-6)
    profiles = pd.read_csv(out / "profiles.csv")
    assert len(profiles) == len(scores) * len(fakes.DEPTHS)
    assert profiles.groupby("subject").size().eq(len(fakes.DEPTHS)).all()
    assert res.failures == [
        {
            "subject": "old01",
            "group": "old",
            "error": f"{manifest.parent / 'volumes' / 'old01.npy'}: simulated unreadable volume",
        }
    ]
    summary = json.loads((out / "study.json").read_text())
    assert (summary["n_ok"], summary["n_failed"]) == (5, 1)
    record = json.loads((out / "subjects" / "old01.json").read_text())
    assert record["status"] == "failed" and "simulated" in record["error"]
    assert (out / "subjects" / "young00" / "note.txt").is_file()
    assert len(fakes.calls(log)) == 6

    # Re-run after the volume was "fixed": only the failed subject is computed again.
    fail_file.write_text("")
    res2 = run_study(manifest, out, function=fakes.fake_analysis, options=options, workers=0)
    assert res2.computed == ["old01"]
    assert sorted(res2.skipped) == sorted(s for s in expected if s != "old01")
    assert fakes.calls(log).count("old01") == 2 and len(fakes.calls(log)) == 7
    assert pd.read_csv(out / "scores.csv")["subject"].tolist() == list(expected)
    assert res2.failures == []


def test_rerun_recomputes_when_input_or_options_change(tmp_path):
    manifest = make_cohort(tmp_path, per_group=1)
    log = tmp_path / "log"
    out = tmp_path / "study"
    opts = {"log_dir": str(log)}
    run_study(manifest, out, function=fakes.fake_analysis, options=opts, workers=0)
    np.save(tmp_path / "volumes" / "old00.npy", np.full((3, 4, 5), 2.5, np.float32))
    res = run_study(manifest, out, function=fakes.fake_analysis, options=opts, workers=0)
    assert res.computed == ["old00"]
    assert res.scores.set_index("subject").loc["old00", "score"] == pytest.approx(2.5)
    res = run_study(
        manifest, out, function=fakes.fake_analysis, options={**opts, "sleep_s": 0.0001}, workers=0
    )
    assert sorted(res.computed) == ["old00", "photo00", "young00"]


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    """Ctrl-C during the second subject: the first is stored; the re-run only does the rest."""
    manifest = make_cohort(tmp_path)
    log = tmp_path / "log"
    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        run_study(
            manifest, out, function=fakes.Interrupt(at=2), options={"log_dir": str(log)}, workers=0
        )
    assert [p.name for p in (out / "subjects").glob("*.json")] == ["young00.json"]
    assert fakes.calls(log) == ["young00"]
    res = run_study(
        manifest, out, function=fakes.Interrupt(at=None), options={"log_dir": str(log)}, workers=0
    )
    assert res.skipped == ["young00"]
    assert fakes.calls(log).count("young00") == 1  # never recomputed
    expected = expected_scores(manifest)
    scores = pd.read_csv(out / "scores.csv")
    assert scores["subject"].tolist() == list(expected)
    np.testing.assert_allclose(scores["score"], list(expected.values()), rtol=1e-6)


def test_killed_cli_run_resumes_and_loses_nothing(tmp_path):
    """kill -9 of `skinoct study run` after the first subject, then run again."""
    manifest = make_cohort(tmp_path)
    out, log = tmp_path / "study", tmp_path / "log"
    args = [
        sys.executable,
        "-m",
        "skinoct",
        "-q",
        "study",
        "run",
        str(manifest),
        "--out",
        str(out),
        "--workers",
        "0",
        "--function",
        "_study_fakes:fake_analysis",
        "--option",
        f"log_dir={log}",
        "--option",
        "sleep_s=0.4",
        "--no-report",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(fakes.__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = out / "subjects" / "young00.json"
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), proc.stderr.read().decode()
    done_before = {p.stem for p in (out / "subjects").glob("*.json")}
    assert len(done_before) < 6  # really interrupted
    json.loads(first.read_text())  # complete, valid JSON (atomic write)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    calls = fakes.calls(log)
    for subject in done_before:
        assert calls.count(subject) == 1, (subject, calls)
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 6 and scores["subject"].is_unique


def test_process_pool_equals_in_process_and_isolates_a_crash(tmp_path):
    manifest = make_cohort(tmp_path)
    local = run_study(manifest, tmp_path / "a", function=fakes.fake_analysis, workers=0)
    pooled = run_study(manifest, tmp_path / "b", function="_study_fakes:fake_analysis", workers=2)
    pd.testing.assert_frame_equal(pooled.scores, local.scores)
    pd.testing.assert_frame_equal(pooled.profiles, local.profiles)
    assert (tmp_path / "a" / "scores.csv").read_bytes() == (
        tmp_path / "b" / "scores.csv"
    ).read_bytes()

    crashed = run_study(
        manifest,
        tmp_path / "c",
        function=fakes.crash_analysis,
        options={"crash_stem": "old00"},
        workers=2,
    )
    assert [f["subject"] for f in crashed.failures] == ["old00"]
    assert "worker process died" in crashed.failures[0]["error"]
    assert crashed.scores["subject"].tolist() == [
        s for s in expected_scores(manifest) if s != "old00"
    ]


def test_dask_local_cluster_equals_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    manifest = make_cohort(tmp_path)
    local = run_study(manifest, tmp_path / "local", function=fakes.fake_analysis, workers=0)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
    ):
        res = run_study(
            manifest,
            tmp_path / "dask",
            function=fakes.fake_analysis,
            scheduler=cluster.scheduler_address,
        )
    pd.testing.assert_frame_equal(res.scores, local.scores)
    pd.testing.assert_frame_equal(res.profiles, local.profiles)
    assert (tmp_path / "dask" / "scores.csv").read_bytes() == (
        tmp_path / "local" / "scores.csv"
    ).read_bytes()
    assert sorted(res.computed) == sorted(local.computed)


def test_unreachable_scheduler_is_an_input_error(tmp_path):
    pytest.importorskip("distributed")
    manifest = make_cohort(tmp_path, per_group=1)
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler"):
        run_study(
            manifest,
            tmp_path / "o",
            function=fakes.fake_analysis,
            scheduler="tcp://127.0.0.1:9",
            connect_timeout_s=1,
        )


def test_bad_function_and_result(tmp_path):
    manifest = make_cohort(tmp_path, per_group=1)
    with pytest.raises(InputError, match="cannot import"):
        run_study(manifest, tmp_path / "o", function="_study_fakes:nope", workers=0)
    res = run_study(manifest, tmp_path / "o", function=lambda v, **k: {"no": "score"}, workers=0)
    assert len(res.failures) == 3
    assert "must return a dict with a 'score'" in res.failures[0]["error"]


def test_cli_exit_codes_and_dej_column(run_cli, tmp_path):
    manifest = make_cohort(tmp_path)
    df = pd.read_csv(manifest)
    df["dej"] = ["", "60", "", "", "", ""]
    df.to_csv(manifest, index=False)
    (tmp_path / "fail.txt").write_text("photo01")
    args = [
        "-q",
        "study",
        "run",
        manifest,
        "--out",
        tmp_path / "s",
        "--workers",
        "0",
        "--function",
        "_study_fakes:fake_analysis",
        "--option",
        f"fail_file={tmp_path / 'fail.txt'}",
    ]
    code, out, err = run_cli(*args)
    assert code == 1, err  # some subjects failed
    assert "failed: photo01" in err
    scores = pd.read_csv(tmp_path / "s" / "scores.csv").set_index("subject")
    assert bool(scores.loc["young01", "dej_given"]) and not bool(scores.loc["young00", "dej_given"])
    assert "photo01" in (tmp_path / "s" / "report.html").read_text(encoding="utf-8")
    (tmp_path / "fail.txt").write_text(" ".join(df["subject"]))
    code, out, err = run_cli(*args)
    assert code == 1  # the five finished subjects are reused, photo01 fails again
    assert "1 analysed, 5 reused, 1 failed" in err
    code, out, err = run_cli(
        "study",
        "run",
        manifest,
        "--out",
        tmp_path / "t",
        "--workers",
        "0",
        "--function",
        "_study_fakes:fake_analysis",
        "--no-report",
        "--option",
        f"fail_file={tmp_path / 'fail.txt'}",
    )
    assert code == 2  # every subject failed
    code, out, err = run_cli("study", "run", manifest, "--out", tmp_path / "t", "--option", "x")
    assert code == 2 and "KEY=VALUE" in err


def test_plan_hashes_every_volume_in_manifest_order(tmp_path):
    """The input hashes are computed on threads; each subject keeps its own."""
    from skinoct.study.run import _plan, input_hash

    manifest = read_manifest(make_cohort(tmp_path))
    kwargs = {"options": {"a": 1}, "fingerprint": {"models": "x"}}
    todo, skipped = _plan(manifest, tmp_path / "out", name="f", **kwargs)
    want = [input_hash(t, function="f", **kwargs) for t in manifest.tasks]
    assert not skipped and len(set(want)) == len(want) > 2
    assert [t.subject for t in todo] == [t.subject for t in manifest.tasks]
    assert [t.input_hash for t in todo] == want
