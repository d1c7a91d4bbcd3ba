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
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
LIMIT = 500_000


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    sys.exit("needs Chromium for the report screenshot (apt-get install chromium)")


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 2200) -> None:
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}/p",
                f"--screenshot={raw}",
                f"--window-size={width},{height}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
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
