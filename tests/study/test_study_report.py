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
