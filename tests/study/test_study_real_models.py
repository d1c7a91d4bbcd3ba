"""The real pipeline: phantom cohort → bundled layer and grading models → study → report.

One small demo cohort (3 groups × 2 subjects, 180 × 400 × 400 µm volumes, every 16th
section segmented) is rendered and analysed once for this module (about a minute on
two idle cores); the tests check it against the phantom's ground truth.

Seed 5 is used because its six subjects' *true* mean qualities give Tukey decisions
far from α = 0.05 (young vs old p = 0.0007, young vs old photo-exposed p = 0.0006,
old vs old photo-exposed p = 0.56): the test then checks that the pipeline recovers
clear differences and invents none, not the outcome of a coin flip at p ≈ α.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinoct.study.analyze import analyze_volume
from skinoct.study.demo import run_demo

pytestmark = pytest.mark.slow
PER_GROUP = 2
SEED = 5
OPTIONS = {"section_step": 16}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(
        out,
        subjects_per_group=PER_GROUP,
        volume_size_um=(180.0, 400.0, 400.0),
        section_step=OPTIONS["section_step"],
        workers=2,
        seed=SEED,
    )


def test_demo_recovers_the_phantoms_group_differences(demo):
    assert demo.n_failed == 0
    c = demo.comparison
    assert c["n"] == 3 * PER_GROUP
    # Every pair the truth finds different is found different, in the same direction,
    # and no pair the truth finds equal is called different.
    assert c["decisions_match"], c["tukey"]
    assert c["significant_order_matches"], c["tukey"]
    assert any(p["true_reject"] for p in c["tukey"])  # the check is not vacuous
    assert c["spearman_rho"] > 0.7
    saved = json.loads((demo.study_dir / "ground_truth_comparison.json").read_text())
    assert saved["decisions_match"] == c["decisions_match"]


def test_demo_tables_and_report(demo):
    scores = pd.read_csv(demo.study_dir / "scores.csv")
    profiles = pd.read_csv(demo.study_dir / "profiles.csv")
    assert len(scores) == 3 * PER_GROUP and scores["subject"].is_unique
    assert scores["score"].between(1, 4).all()
    assert profiles.groupby("subject").size().eq(70).all()
    page = demo.report.read_text(encoding="utf-8")
    assert "Phantom data" in page and 'id="figure-3a"' in page and 'id="figure-3b"' in page
    assert "section overlay" in page


def test_real_segmentation_matches_the_phantom_surfaces(demo):
    cohort = demo.out_dir / "cohort"
    for subject in pd.read_csv(cohort / "manifest.csv")["subject"]:
        truth = np.load(cohort / "ground_truth" / f"{subject}.npz")
        out = demo.study_dir / "subjects" / subject
        dej = np.load(out / "maps" / "dej_um.npy")
        err = dej - truth["dej_um"]
        # every 16th section segmented, the rest interpolated: still within ~1 µm
        assert np.nanmean(np.abs(err)) < 2.5, subject
        assert abs(np.nanmean(err)) < 1.5, subject
        thickness = np.nanmean(truth["dej_um"] - truth["surface_um"])
        measured = json.loads((out / "analysis.json").read_text())["metrics"]
        assert measured["epidermis_thickness_um_mean"] == pytest.approx(thickness, abs=3.0)
        assert measured["coverage_dej"] > 0.95


def test_real_analysis_is_deterministic(demo, tmp_path, monkeypatch):
    subject = "S001"
    volume = demo.out_dir / "cohort" / "volumes" / f"{subject}.ome.tif"
    import torch

    from skinoct.study._workers import available_cpus

    # Same configuration as the demo's 2 workers (each gets CPUs // 2 threads: torch and,
    # through OMP_NUM_THREADS, the onnxruntime runners of the default engine 'auto'):
    # float reductions may round differently with another thread count.
    share = max(1, available_cpus() // 2)
    monkeypatch.setenv("OMP_NUM_THREADS", str(share))
    threads = torch.get_num_threads()
    torch.set_num_threads(share)
    try:
        analyze_volume(volume, out_dir=tmp_path, **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    first = demo.study_dir / "subjects" / subject / "analysis.json"
    assert (tmp_path / "analysis.json").read_bytes() == first.read_bytes()


def test_cli_demo_rejects_a_cohort_without_group_sd(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path, "--subjects-per-group", "1")
    assert code == 2 and "subjects_per_group must be ≥ 2" in err
