"""Headless Chromium: render a report page into a PNG (browser test, docs figures)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["find_chromium", "screenshot_html"]

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on ``PATH``, or None."""
    import shutil

    for name in _CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def screenshot_html(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1280,
    height: int = 2200,
    timeout_s: float = 180,
) -> Path:
    """Render a page with headless Chromium into a PNG of ``width`` × ``height`` pixels.

    The flags keep Chromium off the network (no background services, no QUIC) and use a
    fresh profile, so it runs the same on a closed CI machine.

    Raises
    ------
    FileNotFoundError
        If no Chromium is installed.
    RuntimeError
        If Chromium wrote no screenshot (its last stderr lines are in the message).
    """
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("headless Chromium is not installed (apt-get install chromium)")
    png_path = Path(png_path)
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        proc = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                f"--user-data-dir={profile}/p", f"--screenshot={shot}",
                f"--window-size={width},{height}", Path(html_path).resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if not shot.is_file():
            raise RuntimeError(f"Chromium wrote no screenshot: {proc.stderr[-2000:]}")
        png_path.parent.mkdir(parents=True, exist_ok=True)
        png_path.write_bytes(shot.read_bytes())
    return png_path
