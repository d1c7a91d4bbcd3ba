"""report.html: content checks, and a real browser (headless Chromium) rendering it."""

from __future__ import annotations

import base64
import io
import json
import re

import _study_fakes as fakes
import numpy as np
import pytest
from PIL import Image

from skinoct.study.report import find_chromium, screenshot_html, write_report
from skinoct.study.run import run_study

NOTE = "Phantom data: this demonstrates the software, not clinical performance."


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    manifest = fakes.make_cohort(root, per_group=4)
    (root / "fail.txt").write_text("old01")
    # young03 scores 3.3; make one volume score > 3.5 so the fake flags an uncertain DEJ
    np.save(root / "volumes" / "young03.npy", np.full((3, 4, 5), 3.6, np.float32))
    run_study(
        manifest,
        root / "study",
        function=fakes.fake_analysis,
        options={"fail_file": str(root / "fail.txt")},
        workers=0,
    )
    path = write_report(root / "study", notes=[NOTE])
    return root / "study", path


def _images(page: str) -> dict[str, Image.Image]:
    out = {}
    for m in re.finditer(
        r'<img(?: id="([^"]+)")? alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page
    ):
        out[m.group(1) or m.group(2)] = Image.open(io.BytesIO(base64.b64decode(m.group(3))))
    return out


def test_report_is_self_contained_with_all_sections(study):
    study_dir, path = study
    page = path.read_text(encoding="utf-8")
    assert path == study_dir / "report.html"
    assert not re.search(r'(src|href)="(https?:|//|file:)', page)  # nothing fetched
    for anchor in (
        "cohort",
        "statistics",
        "profiles",
        "metrics",
        "flagged",
        "overlays",
        "versions",
    ):
        assert f'id="{anchor}"' in page
    assert NOTE.split(":")[0] in page
    images = _images(page)
    for ident in ("figure-3a", "figure-3b", "subject-profiles"):
        assert ident in images, sorted(images)
        assert images[ident].width > 300 and images[ident].height > 250
    overlays = [k for k in images if k.endswith(" overlay")]
    assert len(overlays) == 11  # every analysed subject (12 minus the failed one)
    # the flagged subject's overlay comes first
    assert overlays[0] == "young03 overlay"


def test_report_tables_match_the_study(study):
    study_dir, path = study
    page = path.read_text(encoding="utf-8")
    stats = json.loads((study_dir / "stats.json").read_text())
    assert stats["groups"]["old"]["n"] == 3 and stats["groups"]["young"]["n"] == 4
    # cohort row: group, subjects, analysed, failed
    assert re.search(r"<tr><td>old</td><td>4</td><td>3</td><td>1</td>", page)
    flagged = page.split('id="flagged"')[1].split("<h2")[0]
    assert "old01" in flagged and "failed" in flagged and "simulated unreadable volume" in flagged
    assert "young03" in flagged and "uncertain DEJ" in flagged
    assert "young00" not in flagged
    assert f"F({stats['anova']['df_between']}, {stats['anova']['df_within']})" in page
    for name in ("figure_3a_profiles", "figure_3b_group_means", "subject_profiles"):
        assert (study_dir / "figures" / f"{name}.png").is_file()
    assert "statsmodels" in page and "skinoct" in page


def test_report_without_statistics_says_why(tmp_path):
    manifest = fakes.make_cohort(tmp_path, per_group=1)  # one subject per group: no SD
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    assert "Statistics not computed" in page and "at least two scores" in page
    assert 'id="figure-3a"' in page  # the profiles are still shown


def test_cli_study_run_writes_report(run_cli, tmp_path):
    manifest = fakes.make_cohort(tmp_path)
    code, out, err = run_cli(
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
    )
    assert code == 0, err
    assert (tmp_path / "s" / "report.html").is_file()
    assert "6 subject(s): 6 analysed, 0 reused, 0 failed" in err


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="headless Chromium is not installed")
def test_report_renders_in_headless_chromium(study, tmp_path):
    _, path = study
    width, height = 1200, 1600
    shot = screenshot_html(path, tmp_path / "shot.png", width=width, height=height)
    with Image.open(shot) as im:
        assert im.size == (width, height)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert rgb.std() > 20  # not a blank page
    # The figures were decoded and drawn: Figure 3B's first bar is Okabe-Ito blue
    # (#0072B2, drawn with alpha 0.85 on white) and Figure 3A's strips are red–green.
    blue = (np.abs(rgb - [38, 135, 190]).sum(axis=2) < 40).sum()
    red = ((rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] < 100)).sum()
    green = ((rgb[..., 1] > 150) & (rgb[..., 0] < 190) & (rgb[..., 2] < 120)).sum()
    assert blue > 2000, blue
    assert red > 500 and green > 500, (red, green)


# ---------------------------------------------------------------- trust (issue 15)


def _cohort(root, groups: dict[str, int]):
    """A fake cohort with arbitrary (hostile) group names."""
    import pandas as pd

    (root / "volumes").mkdir(parents=True)
    rows = []
    for k, (group, n) in enumerate(groups.items()):
        for i in range(n):
            subject = f"s{k}x{i}"
            np.save(root / "volumes" / f"{subject}.npy", np.full((3, 4, 5), 1 + k + 0.1 * i))
            rows.append({"subject": subject, "group": group, "volume": f"volumes/{subject}.npy"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_report_with_groups_named_like_missing_values(tmp_path):
    """Groups NA / nan / null used to be read as missing and abort the report (TypeError)."""
    manifest = _cohort(tmp_path, {"NA": 2, "nan": 2, "null": 3})
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert list(stats["groups"]) == ["NA", "nan", "null"]
    for g, n in (("NA", 2), ("nan", 2), ("null", 3)):
        assert re.search(rf"<tr><td>{g}</td><td>{n}</td><td>{n}</td><td>0</td>", page)
    assert "small groups: NA (n = 2), nan (n = 2), null (n = 3)" in page
    assert "not reliable (n &lt; 5)" in page
    for name in ("stats_descriptive.csv", "stats_tests.csv", "stats_pairwise.csv"):
        assert (tmp_path / "s" / name).is_file()


def test_report_escapes_hostile_names_and_neutralises_csv(tmp_path):
    hostile = '<script>alert(1)</script>'
    formula = "=HYPERLINK(\"http://evil\")"
    manifest = _cohort(tmp_path, {hostile: 2, formula: 2})
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert set(stats["groups"]) == {hostile, formula}  # raw values in JSON
    for name in ("scores.csv", "profiles.csv", "stats_descriptive.csv", "stats_pairwise.csv"):
        text = (tmp_path / "s" / name).read_text()
        assert "'=HYPERLINK" in text, name
        assert ",=" not in text and "\n=" not in text, name


def test_report_names_a_near_duplicate_group(tmp_path):
    manifest = _cohort(tmp_path, {"young": 3, "old": 3, "yuong": 1})
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    assert "Statistics not computed" in page and "did you mean &#39;young&#39;?" in page
    assert "did you mean 'young'?" in json.loads((tmp_path / "s" / "stats.json").read_text())[
        "error"
    ]
    assert not (tmp_path / "s" / "stats_pairwise.csv").exists()


def test_report_shows_input_hashes_and_provenance_banner(tmp_path):
    import hashlib

    manifest = fakes.make_cohort(tmp_path, per_group=2)
    run_study(manifest, tmp_path / "s", function=fakes.fake_analysis, workers=0)
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    inputs = page.split('id="inputs"')[1].split("<h2")[0]
    for subject in ("young00", "old01", "photo01"):
        digest = hashlib.sha256((tmp_path / "volumes" / f"{subject}.npy").read_bytes()).hexdigest()
        assert re.search(rf"<td>{subject}</td>.*?<td>{digest}</td>", inputs)
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() in inputs
    assert 'id="provenance"' not in page  # the fake analysis used no model
    # a record written by a phantom-trained model: the banner appears at the top
    rec_path = tmp_path / "s" / "subjects" / "young00.json"
    rec = json.loads(rec_path.read_text())
    model = {"task": "layers", "synthetic_training_data": True}
    rec["result"]["versions"] = {"layers_model": model}
    rec["result"]["input"] = {"sha256": "ab" * 32}
    rec_path.write_text(json.dumps(rec))
    page = write_report(tmp_path / "s").read_text(encoding="utf-8")
    banner = page.split('id="provenance"')[1].split("</div>")[0]
    assert "layer segmentation model" in banner and "trained on synthetic LC-OCT phantom" in banner
    assert page.index('id="provenance"') < page.index('id="cohort"')
    assert re.search(r"<td>young00</td>.*?<td>" + "ab" * 32 + "</td><td>at analysis</td>", page)
