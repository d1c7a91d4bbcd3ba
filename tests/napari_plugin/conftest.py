"""napari plugin tests: headless under ``xvfb-run -a`` (scripts/test does it in CI).

Skipped with the reason where napari, pytest-qt or a display is missing. The phantom
inputs are tiny so that every widget runs in seconds on a CPU.
"""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("napari", reason="napari is not installed: pip install 'skinoct[napari]'")
pytest.importorskip("pytestqt", reason="no pytest-qt: pip install 'skinoct[napari-test]'")
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    pytest.skip(
        "no display: run the napari tests under xvfb-run -a (scripts/test does)",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
def phantom_section_image():
    from skinoct.io import Image
    from skinoct.phantom import SectionParams, render_section

    params = SectionParams(depth_um=160, width_um=240, spacing_um=(1.0, 2.0))
    section = render_section(params, seed=5)
    return Image(section.image, section.spacing_um, "zx"), section.labels


@pytest.fixture(scope="session")
def phantom_volume_image():
    from skinoct.io import Image
    from skinoct.phantom import VolumeParams, render_volume

    volume = render_volume(
        VolumeParams(size_um=(160, 100, 300), spacing_um=(1.0, 4.0, 3.0)), seed=3
    )
    return Image(volume.volume, volume.spacing_um, "zyx"), volume.labels


@pytest.fixture
def wait(qtbot):
    """``wait(widget)``: until the widget's worker is done; fail with its error message."""

    def wait_for(widget, timeout_s: float = 180.0) -> None:
        qtbot.waitUntil(lambda: widget.worker is None, timeout=int(timeout_s * 1000))
        assert widget.error is None, widget.error

    return wait_for
