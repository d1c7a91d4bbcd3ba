"""Regenerate the study figures of the docs from ``skinoct demo``.

Runs the demo (phantom cohort, bundled models; reuses ``--work`` when it exists),
then copies its figures to ``docs/img/study_*.png`` and renders ``report.html`` with
headless Chromium to ``docs/img/report_screenshot.png``. Every PNG is checked to be
under 500 kB.

Usage::

    .venv/bin/python scripts/make_study_figures.py [--work /tmp/skinoct-demo-docs]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
LIMIT = 500_000


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 2200) -> None:
    from skinoct.study.report import find_chromium, screenshot_html

    if find_chromium() is None:
        sys.exit("needs Chromium for the report screenshot (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = screenshot_html(html, Path(tmp) / "shot.png", width=width, height=height)
        save_small(raw.read_bytes(), png)


def save_small(data: bytes, dest: Path) -> None:
    """Write a PNG under the size limit (palette-quantised, then scaled down if needed)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = 1.0
    while True:
        im = (
            image
            if scale == 1.0
            else image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
            )
        )
        buf = io.BytesIO()
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
        if buf.tell() < LIMIT or scale < 0.3:
            break
        scale *= 0.85
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(buf.getvalue())
    print(f"{dest.relative_to(ROOT)}: {buf.tell() / 1000:.0f} kB, {im.width}×{im.height}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "skinoct-demo-docs"
    )
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "skinoct", "demo", "--out", str(args.work)], check=True, cwd=ROOT
    )
    study = args.work / "study"
    figures = {
        "study_figure_3a.png": study / "figures" / "figure_3a_profiles.png",
        "study_figure_3b.png": study / "figures" / "figure_3b_group_means.png",
        "study_subject_profiles.png": study / "figures" / "subject_profiles.png",
    }
    first = sorted((study / "subjects").glob("*.json"))[0]
    images = json.loads(first.read_text())["result"]["images"]
    subject_dir = study / "subjects" / first.stem
    figures["study_overlay.png"] = subject_dir / images["section overlay (boundaries / entropy)"]
    figures["study_profile.png"] = subject_dir / images["profile"]
    for name, src in figures.items():
        save_small(src.read_bytes(), IMG / name)
    screenshot(study / "report.html", IMG / "report_screenshot.png")


if __name__ == "__main__":
    main()
