"""Studies a careless user or an attacker can not turn against the user (issue 15 point 4),
and the provenance banner in the CLI's closing lines (point 6)."""

from __future__ import annotations

import errno
import json
import types
from pathlib import Path

import _study_fakes as fakes
import numpy as np
import pandas as pd
import pytest

from skinoct.io import atomic_path, remove_stale_temp_files, write_image, write_json
from skinoct.study.manifest import MAX_SUBJECT_BYTES, ManifestError, read_manifest
from skinoct.study.run import run_study

SYNTHETIC = {"weights_sha256": "0" * 64, "training": {"synthetic_data": True}}


def _manifest(root: Path, rows: list[tuple[str, str]]) -> Path:
    (root / "volumes").mkdir(parents=True, exist_ok=True)
    table = []
    for k, (subject, group) in enumerate(rows):
        name = f"v{k}.npy"
        np.save(root / "volumes" / name, np.full((3, 4, 5), 1.0 + k % 3 + 0.1 * k, np.float32))
        table.append({"subject": subject, "group": group, "volume": f"volumes/{name}"})
    pd.DataFrame(table).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


# ---------------------------------------------------------------- CSV injection


def test_formula_cells_are_neutralised_in_scores_and_profiles(tmp_path):
    rows = [("a1", "=1+1"), ("a2", "=1+1"), ("b1", "@SUM(A1)"), ("b2", "@SUM(A1)")]
    manifest = _manifest(tmp_path, rows)
    (tmp_path / "manifest.csv").write_text(
        (tmp_path / "manifest.csv").read_text().replace("\n", ",+site\n", 1)
        .replace("subject,group,volume,+site", "subject,group,volume,site")
        .replace(".npy\n", ".npy,-cmd\n")
    )  # fmt: skip
    result = run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    assert result.n_failed == 0
    for name in ("scores.csv", "profiles.csv"):
        text = (tmp_path / "s" / name).read_text()
        assert "'=1+1" in text and "'@SUM(A1)" in text
        for line in text.splitlines()[1:]:
            for cell in line.split(","):
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, line)
                assert not (cell.startswith("-") and not cell[1:2].isdigit()), (name, line)
    assert "'-cmd" in (tmp_path / "s" / "scores.csv").read_text()
    record = json.loads((tmp_path / "s" / "subjects" / "a1.json").read_text())
    assert record["group"] == "=1+1" and record["site"] == "-cmd"  # raw values in JSON


# ---------------------------------------------------------------- subject IDs


def test_overlong_subject_id_is_rejected_in_validation(tmp_path):
    long_id = "s" * 240
    manifest = _manifest(tmp_path, [("ok1", "a"), (long_id, "a"), ("ok2", "b")])
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest)
    (problem,) = info.value.problems
    assert problem.startswith("line 3 (" + "s" * 40 + "…)") and "240 bytes" in problem
    assert f"at most {MAX_SUBJECT_BYTES}" in problem
    fine = _manifest(tmp_path / "b", [("x" * MAX_SUBJECT_BYTES, "a"), ("y", "a")])
    result = run_study(fine, tmp_path / "b" / "s", function=fakes.fake_analysis, workers=0)
    assert result.n_failed == 0 and len(result.scores) == 2  # the longest allowed id works


def test_cli_overlong_subject_id_exit_2_before_any_work(run_cli, tmp_path):
    manifest = _manifest(tmp_path, [("ok1", "a"), ("s" * 240, "a"), ("ok2", "a")])
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "o", "--no-report")
    assert code == 2 and "240 bytes" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- kill and resume, full disk


def test_resume_removes_temp_files_of_a_killed_run(tmp_path):
    manifest = fakes.make_cohort(tmp_path, per_group=1)
    out = tmp_path / "s"
    run_study(manifest, out, function=fakes.fake_analysis, workers=0)
    # what kill -9 during atomic writes leaves behind (atomic_path's naming)
    stale = [out / "subjects" / ".young00.k2j3h4.tmp.json", out / ".scores.abc123.tmp.csv",
             out / "subjects" / "old00" / ".overlay.zz9.tmp.png"]  # fmt: skip
    for path in stale:
        path.write_text("partial")
    keep = out / "subjects" / "old00" / "note.txt"
    result = run_study(manifest, out, function=fakes.fake_analysis, workers=0)
    assert result.skipped == ["young00", "old00", "photo00"]
    assert not [p for p in stale if p.exists()]
    assert keep.is_file() and not list(out.rglob(".*.tmp*"))
    assert remove_stale_temp_files(tmp_path / "nowhere") == []


def test_full_disk_error_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "stats.json"

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        write_json(target, {"a": 1})
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert not target.exists() and not list(target.parent.iterdir())  # no temp file left
    with pytest.raises(FileNotFoundError) as named, atomic_path(tmp_path / "x.txt"):
        open(tmp_path / "missing" / "y")  # an error that already names a file keeps it
    assert named.value.filename.endswith("y")


def test_cli_full_disk_one_line_naming_the_file(run_cli, tmp_path, monkeypatch):
    manifest = fakes.make_cohort(tmp_path, per_group=2)
    original = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".young01."):  # the temp file of one subject's record
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "s", "--workers", "0",
                           "--function", "_study_fakes:fake_analysis")  # fmt: skip
    assert code == 2
    record = tmp_path / "s" / "subjects" / "young01.json"
    assert "No space left on device" in err and str(record) in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- groups vs statistics


def test_cli_group_typo_exit_2_with_did_you_mean(run_cli, tmp_path):
    rows = [("y1", "young"), ("y2", "young"), ("y3", "yuong"), ("o1", "old"), ("o2", "old")]
    manifest = _manifest(tmp_path, rows)
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "o", "--workers", "0",
                           "--function", "_study_fakes:fake_analysis")  # fmt: skip
    assert code == 2
    assert "group 'yuong' has 1 subject(s)" in err and "did you mean 'young'?" in err
    assert "--no-report" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli("-q", "study", "run", manifest, "--out", tmp_path / "o",
                           "--no-report", "--workers", "0",
                           "--function", "_study_fakes:fake_analysis")  # fmt: skip
    assert code == 0, err  # without statistics the volumes are analysed


def test_cli_stats_small_groups_warn_and_write_tables(run_cli, tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("subject,group,score\na,NA,3.0\nb,NA,3.02\nc,[red]x,2.0\nd,[red]x,2.05\n")
    code, out, err = run_cli("study", "stats", path, "--out", tmp_path / "o")
    assert code == 0, err
    assert "warning: small groups: NA (n = 2), [red]x (n = 2)" in err.replace("\n", " ")
    assert "n/a (n < 5)" in out and "[red]x" in out  # d not printed; markup not swallowed
    for name in ("stats.json", "stats_descriptive.csv", "stats_pairwise.csv", "stats_tests.csv"):
        assert (tmp_path / "o" / name).is_file()
    pairs = pd.read_csv(tmp_path / "o" / "stats_pairwise.csv")
    assert not pairs["d_reliable"].iloc[0] and abs(pairs["cohen_d"].iloc[0]) > 20


def test_cli_stats_typo_group_did_you_mean(run_cli, tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("subject,group,score\na,young,3\nb,young,3.1\nc,yuong,2.9\nd,old,2\ne,old,2.1\n")
    code, _, err = run_cli("study", "stats", path)
    assert code == 2 and "yuong (n=1)" in err and "did you mean 'young'?" in err


# ---------------------------------------------------------------- provenance banner


@pytest.fixture
def synthetic_stand_ins(monkeypatch):
    import skinoct.layers
    import skinoct.matrix
    import skinoct.study.analyze as analyze_mod

    model = types.SimpleNamespace(classes=(1, 2, 3, 4), manifest=SYNTHETIC, path=None)
    monkeypatch.setattr(skinoct.layers, "segment_sections", fakes.fake_segment_sections)
    monkeypatch.setattr(skinoct.matrix, "predict_tiles", fakes.uniformity_grader)
    monkeypatch.setattr(analyze_mod, "load_models", lambda a, b: (model, model))


def test_cli_analyze_says_phantom_trained_in_plain_words(synthetic_stand_ins, run_cli, tmp_path):
    volume = write_image(tmp_path / "v.ome.tif", fakes.layered_volume(shape=(140, 48, 90)),
                         spacing_um=(1, 1, 1), axes="zyx")  # fmt: skip
    code, _, err = run_cli("analyze", volume, "--out", tmp_path / "o", "--section-step", "4",
                           "--tile-size", "40")  # fmt: skip
    assert code == 0, err
    flat = " ".join(err.split())
    assert "note: Phantom-trained models: the layer segmentation and dermal-matrix grading" in flat
    assert "not clinical measurements" in flat
    analysis = json.loads((tmp_path / "o" / "analysis.json").read_text())
    assert "trained on synthetic LC-OCT phantom images only" in analysis["provenance"]


def test_cli_study_run_closing_line_names_phantom_models(run_cli, tmp_path):
    manifest = fakes.make_cohort(tmp_path, per_group=2)
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "s", "--workers", "0",
                           "--function", "_study_fakes:fake_analysis")  # fmt: skip
    assert code == 0 and "Phantom-trained" not in err  # no model, no banner
    rec = tmp_path / "s" / "subjects" / "young00.json"
    record = json.loads(rec.read_text())
    record["result"]["versions"] = {"matrix_model": {"synthetic_training_data": True}}
    rec.write_text(json.dumps(record))
    code, _, err = run_cli("study", "run", manifest, "--out", tmp_path / "s", "--workers", "0",
                           "--function", "_study_fakes:fake_analysis")  # fmt: skip
    lines = [" ".join(line.split()) for line in err.strip().split("note: ")]
    assert code == 0 and lines[-1].startswith("Phantom-trained model: the dermal-matrix grading")
    page = (tmp_path / "s" / "report.html").read_text(encoding="utf-8")
    assert 'id="provenance"' in page
