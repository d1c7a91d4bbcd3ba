"""Screenshots of docs/napari.md, taken from a real napari viewer driving the plugin.

Run under a (virtual) display::

    xvfb-run -a python scripts/make_napari_screenshots.py [--out docs/img]

Walks the loop of docs/napari.md on phantom data: open a section → Segment → paint
mistakes → Correct (order + islands) → Save as training pair → Fine-tune (one short
epoch) → re-segment with the new model; then Analyze volume on a phantom volume. Each
step saves ``napari_<step>.png`` (the whole window: canvas and docked widgets).
Writes a scratch dataset and model under a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import skinoct.napari  # noqa: F401  (guards torch's triton import before any GL context)


def _wait(app, widget, timeout_s: float = 600.0) -> None:
    start = time.monotonic()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{type(widget).__name__} did not finish")
    app.processEvents()
    if widget.error:
        raise RuntimeError(widget.error)


def _shot(viewer, app, path: Path) -> None:
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    image = viewer.screenshot(path=None, canvas_only=False, flash=False)
    from PIL import Image as PILImage

    PILImage.fromarray(np.asarray(image)[..., :3]).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtWidgets import QApplication

    from skinoct.napari import (
        AnalyzeWidget,
        CorrectWidget,
        FineTuneWidget,
        SaveTrainingPairWidget,
        SegmentWidget,
        phantom_section,
        phantom_volume,
    )

    scratch = Path(tempfile.mkdtemp(prefix="skinoct_shots_"))
    viewer = napari.Viewer(title="skinoct", show=True)
    viewer.window._qt_window.resize(1500, 900)
    app = QApplication.instance()

    data, kwargs, _ = phantom_section()[0]
    kwargs["name"] = "section"
    viewer.add_image(data, **kwargs)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment", area="right")
    segment.image.value = "section"
    segment.run()
    _wait(app, segment)
    viewer.layers["section entropy"].visible = False
    viewer.reset_view()
    _shot(viewer, app, args.out / "napari_segment.png")

    # Paint two mistakes (as a careless brush would), then correct them.
    labels = viewer.layers["section layers"]
    painted = labels.data.copy()
    painted[150:175, 200:240] = 1  # an SC island deep in the dermis
    painted[30:50, 420:470] = 3  # dermis inside the epidermis
    labels.data = painted
    correct = CorrectWidget(viewer)
    viewer.window.add_dock_widget(correct, name="Correct", area="right")
    correct.labels.value = "section layers"
    _shot(viewer, app, args.out / "napari_correct_before.png")
    correct.impose_order()
    _wait(app, correct)
    correct.remeasure()
    _wait(app, correct)
    _shot(viewer, app, args.out / "napari_correct_after.png")

    save = SaveTrainingPairWidget(viewer)
    viewer.window.add_dock_widget(save, name="Save as training pair", area="right")
    save.image.value, save.labels.value = "section", "section layers"
    save.dataset.value = str(scratch / "dataset")
    save.subject.value = "P01"
    save.save()
    _wait(app, save)
    finetune = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(finetune, name="Fine-tune", area="right")
    finetune.dataset.value = str(scratch / "dataset")
    finetune.out_dir.value = str(scratch / "model")
    finetune.epochs.value, finetune.patch.value = 2, 64
    finetune.run()
    _wait(app, finetune)
    _shot(viewer, app, args.out / "napari_finetune.png")
    finetune.switch_model()
    segment.run()
    _wait(app, segment)

    viewer.layers.clear()
    viewer.window.remove_dock_widget("all")
    data, kwargs, _ = phantom_volume()[0]
    kwargs["name"] = "volume"
    viewer.add_image(data, **kwargs)
    analyze = AnalyzeWidget(viewer)
    viewer.window.add_dock_widget(analyze, name="Analyze volume", area="right")
    analyze.volume.value = "volume"
    analyze.tile_um.value, analyze.depth_stop.value = 80.0, 30.0
    analyze.run()
    _wait(app, analyze)
    for layer in viewer.layers:  # en-face plane 20 µm below the DEJ with its graded tiles
        layer.visible = "en-face" in layer.name or "tiles" in layer.name
    viewer.reset_view()
    _shot(viewer, app, args.out / "napari_analyze_tiles.png")
    for layer in viewer.layers:  # the DEJ surface alone, seen from the side
        layer.visible = "DEJ surface" in layer.name
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.scene.camera.angles = (-60, 20, 75)
    viewer.scene.camera.zoom *= 0.8
    _shot(viewer, app, args.out / "napari_analyze.png")
    viewer.close()


if __name__ == "__main__":
    main()
