"""Segment, Analyze volume and Correct widgets (thin over skinoct's library)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import napari
import napari.layers
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, PushButton, Table

from skinoct.napari._base import WorkerWidget, scale_of
from skinoct.napari._layers import (
    boundary_layer,
    entropy_layer,
    labels_layer,
    surface_layer,
    uncertain_layer,
)

__all__ = ["AnalyzeWidget", "CorrectWidget", "SegmentWidget", "section_metrics_rows"]

_BATCH = 4


def section_metrics_rows(metrics: dict) -> dict[str, list]:
    """A two-column table (metric, value) of flat section metrics, numbers rounded."""
    from skinoct.morphometry import flatten_metrics

    flat = flatten_metrics(metrics)
    names, values = [], []
    for key, value in flat.items():
        if isinstance(value, (list, dict)) or key == "spacing_um":
            continue
        names.append(key)
        values.append(round(value, 3) if isinstance(value, float) else value)
    return {"metric": names, "value": values}


def _measure_layers(labels, spacing, stem: str, entropy=None, probabilities=None, model=None):
    """Metrics, boundary paths and uncertain-DEJ boxes of one section (the DEJ flag of
    ``model``'s calibration; the bundled model's without one)."""
    import warnings

    from skinoct.errors import InputError
    from skinoct.layers import dej_flag_settings
    from skinoct.morphometry import measure_section

    flag = dej_flag_settings(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = measure_section(
                labels, spacing, entropy=entropy, probabilities=probabilities,
                entropy_threshold=flag.threshold, entropy_band_um=flag.band_um,
                min_segment_um=flag.min_segment_um,
            )  # fmt: skip
    except InputError as exc:
        return {"error": exc.reason}, []
    b = m.boundaries
    bounds = {k: b[k] for k in ("surface", "sc_junction", "dej")}
    layers = [boundary_layer(bounds, spacing, name=f"{stem} boundaries")]
    segments = getattr(m, "dej_uncertain_segments", None) or []
    layers.append(uncertain_layer(segments, b.dej, spacing, name=f"{stem} uncertain DEJ"))
    return m.to_dict(), layers


class SegmentWidget(WorkerWidget):
    """Segment a section or a volume (section by section) with a layer model.

    Adds ``<image> layers`` (labels), ``<image> entropy`` and, for a section, the
    boundaries and the uncertain DEJ stretches; shows the section's metrics.
    """

    kind = "segment"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.image = self._layer_combo("image", napari.layers.Image)
        self.model_dir = FileEdit(label="model folder", mode="d", value="")
        self.model_dir.tooltip = "Empty: the bundled model (trained on synthetic phantoms only)."
        self.engine = ComboBox(label="engine", choices=["torch", "onnx"], value="torch")
        self.tta = CheckBox(label="mirror TTA", value=False)
        self.run_button = PushButton(text="Segment")
        self.run_button.changed.connect(self.run)
        self.table = Table(value={"metric": [], "value": []})
        self.metrics: dict = {}
        self.extend([self.image, self.model_dir, self.engine, self.tta, self.run_button])
        self._finish_layout()
        self.append(self.table)

    def model_path(self) -> Path | None:
        value = str(self.model_dir.value or "").strip()
        return Path(value) if value not in ("", ".") else None

    def run(self):
        """Segment the chosen image in a worker; returns the worker."""
        layer = self.layer(self.image)
        data, spacing, stem = layer.data, scale_of(layer), layer.name
        options = {"engine": self.engine.value, "tta": bool(self.tta.value)}
        model_dir = self.model_path()

        def work():
            from skinoct.layers import load_layers_model, segment_section, segment_sections

            yield 0, 1, "loading the model…"
            model = load_layers_model(model_dir)
            if np.ndim(data) == 2:
                yield 0, 1, "segmenting…"
                image = np.asarray(data)
                result = segment_section(image, model, spacing_um=spacing, **options)
                metrics, shapes = _measure_layers(
                    result.labels, spacing, stem, result.entropy, result.probabilities, model
                )
                return result.labels, result.entropy, spacing, metrics, shapes
            nz, ny, nx = data.shape
            labels = np.zeros((nz, ny, nx), np.uint8)
            entropy = np.zeros((nz, ny, nx), np.float32)
            section_spacing = (spacing[0], spacing[2])
            for start in range(0, ny, _BATCH):
                yield start, ny, f"section {start + 1}/{ny}"
                stack = np.asarray(data[:, start : start + _BATCH, :]).transpose(1, 0, 2)
                result = segment_sections(
                    stack, model, spacing_um=section_spacing, batch_size=_BATCH, **options
                )
                labels[:, start : start + _BATCH] = result.labels.transpose(1, 0, 2)
                entropy[:, start : start + _BATCH] = result.entropy.transpose(1, 0, 2)
            return labels, entropy, spacing, {}, []

        return self.start(work, lambda out: self._show(stem, *out))

    def _show(self, stem, labels, entropy, spacing, metrics, shapes) -> None:
        self.metrics = metrics
        meta = {"skinoct_metrics": metrics, "skinoct_model": str(self.model_path() or "bundled")}
        self.add_layers(
            [
                entropy_layer(entropy, spacing, name=f"{stem} entropy"),
                labels_layer(labels, spacing, name=f"{stem} layers", metadata=meta),
                *shapes,
            ]
        )
        self.table.value = section_metrics_rows(metrics) if "error" not in metrics else {
            "metric": ["error"], "value": [metrics["error"]]}  # fmt: skip
        self.status.value = f"segmented {stem}"


class AnalyzeWidget(WorkerWidget):
    """Run ``analyze`` on a volume: DEJ surface, thickness maps, dermal-quality profile.

    The profile (mean grade per depth below the DEJ) is drawn in a matplotlib canvas
    docked beside the viewer.
    """

    kind = "analyze"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.volume = self._layer_combo("volume", napari.layers.Image, ndim=(3,))
        self.tile_um = FloatSpinBox(label="tile size (µm)", value=400.0, min=16, max=2000)
        self.depth_stop = FloatSpinBox(label="profile depth (µm)", value=70.0, min=2, max=500)
        self.tile_depth = FloatSpinBox(label="tiles shown at (µm below DEJ)", value=20.0,
                                       min=0, max=500)  # fmt: skip
        self.out_dir = FileEdit(label="output folder", mode="d", value="")
        self.run_button = PushButton(text="Analyze volume")
        self.run_button.changed.connect(self.run)
        self.result: dict | None = None
        self.tile_grades: list[float] = []
        self.canvas = None
        self.extend([self.volume, self.tile_um, self.depth_stop, self.tile_depth, self.out_dir,
                     self.run_button])  # fmt: skip
        self._finish_layout()

    def run(self):
        from skinoct.io import Image

        layer = self.layer(self.volume)
        image = Image(np.asarray(layer.data), scale_of(layer), "zyx")
        out = str(self.out_dir.value or "").strip()
        out_dir = Path(out) if out not in ("", ".") else Path(tempfile.mkdtemp(prefix="skinoct_"))
        options = {"tile_size_um": float(self.tile_um.value),
                   "depth_stop_um": float(self.depth_stop.value), "n_overlays": 0}  # fmt: skip
        model = self._segment_model()

        def work():
            from skinoct.study import analyze_volume

            yield 0, 2, "analysing (segmentation, morphometry, tiles, grading)…"
            result = analyze_volume(image, out_dir=out_dir, layers_model=model, **options)
            yield 1, 2, "grading the tiles of the chosen depth…"
            dej = np.load(out_dir / "maps" / "dej_um.npy")
            tiles = _graded_tiles(image, dej, depth, options["tile_size_um"])
            return result, out_dir, tiles

        depth = float(self.tile_depth.value)
        return self.start(work, lambda out: self._show(layer.name, image, *out))

    def _segment_model(self):
        from skinoct.napari._base import widgets_of

        segment = widgets_of(self.viewer).get("segment")
        return segment.model_path() if segment is not None else None

    def _show(self, stem: str, image, result: dict, out_dir: Path, tiles) -> None:
        self.result = result
        meta = {"skinoct_score": result["score"], "skinoct_metrics": result["metrics"],
                "skinoct_output": str(out_dir)}  # fmt: skip
        dej = np.load(out_dir / "maps" / "dej_um.npy")
        surface = surface_layer(dej, image.spacing_um, name=f"{stem} DEJ surface")
        surface[1]["metadata"] = meta
        maps = []
        for name in ("epidermis_thickness_um", "stratum_corneum_thickness_um"):
            data = np.load(out_dir / "maps" / f"{name}.npy")
            maps.append((data, {"name": f"{stem} {name}", "scale": image.spacing_um[1:],
                                "colormap": "viridis", "visible": False, "metadata": meta},
                         "image"))  # fmt: skip
        plane, boxes, grades = tiles
        self.tile_grades = grades
        depth = float(self.tile_depth.value)
        dy, dx = image.spacing_um[1:]
        enface = (plane, {"name": f"{stem} en-face {depth:g} µm below DEJ",
                          "scale": (dy, dx), "colormap": "gray"}, "image")  # fmt: skip
        outlines = (boxes, {"name": f"{stem} tiles {depth:g} µm", "scale": (dy, dx),
                            "shape_type": "rectangle", "edge_color": "#ffd700",
                            "face_color": "transparent", "edge_width": 3.0,
                            "features": {"grade": grades},
                            "text": {"string": "grade {grade:.2f}", "color": "#ffd700"}},
                    "shapes")  # fmt: skip
        self.add_layers([surface, *maps, enface, outlines])
        self._plot_profile(result["profile"], result["score"])
        self.status.value = f"score {result['score']:.2f} (mean grade 1–4 over depths)"

    def _plot_profile(self, profile: dict, score: float) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        if self.canvas is None:
            self.canvas = FigureCanvasQTAgg(Figure(figsize=(4, 3), dpi=90))
            self.canvas.setMinimumHeight(260)
            self.viewer.window.add_dock_widget(self.canvas, name="skinoct profile", area="right")
        fig = self.canvas.figure
        fig.clear()
        ax = fig.add_subplot(111)
        depth = np.asarray(profile["depth_um"], float)
        mean = np.asarray(profile["score"], float)
        sd = np.asarray(profile.get("sd", np.zeros_like(mean)), float)
        ax.plot(mean, depth, color="#1e6eff")
        ax.fill_betweenx(depth, mean - sd, mean + sd, color="#1e6eff", alpha=0.2)
        ax.set_ylim(depth.max() if depth.size else 1, 0)
        ax.set_xlim(1, 4)
        ax.set_xlabel("dermal matrix grade (1–4)")
        ax.set_ylabel("depth below DEJ (µm)")
        ax.set_title(f"volume score {score:.2f}")
        fig.tight_layout()
        self.canvas.draw_idle()


def _graded_tiles(image, dej_um, depth_um: float, tile_size_um: float):
    """The en-face plane ``depth_um`` below the DEJ, its tiles (boxes in pixels) and the
    expected grade Σ p·g of each (seed 002 §2.3.2, bundled matrix model)."""
    from skinoct.matrix import load_matrix_model, predict_tiles, profile_tiles

    tiles, index = profile_tiles(image, dej_um, depths_um=[depth_um], n_tiles=3,
                                 tile_size_um=tile_size_um)  # fmt: skip
    model = load_matrix_model()
    grades = []
    if len(tiles):
        probabilities = predict_tiles(tiles, model)
        grades = (probabilities @ np.asarray(model.classes, dtype=float)).round(3).tolist()
    dz, dy, dx = image.spacing_um
    boxes = [
        np.array([[r.y_um / dy, r.x_um / dx], [r.y_um / dy + r.height_px, r.x_um / dx
                                                + r.width_px]], dtype=float)
        for r in index.itertuples()
    ]  # fmt: skip
    filled = np.where(np.isfinite(dej_um), dej_um, np.nanmedian(dej_um))
    z = np.clip(np.rint((filled + depth_um) / dz).astype(int), 0, image.shape[0] - 1)
    yy, xx = np.mgrid[0 : image.shape[1], 0 : image.shape[2]]
    plane = np.asarray(image.data[z, yy, xx], dtype=np.float32)  # follows the local DEJ
    return plane, boxes, grades


class CorrectWidget(WorkerWidget):
    """Correct a mask: paint with napari's tools, then re-impose the layer order per
    column (air → SC → epidermis → dermis) and remove islands; re-measure."""

    kind = "correct"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.labels = self._layer_combo("labels", napari.layers.Labels)
        self.order_button = PushButton(text="Impose layer order + remove islands")
        self.order_button.changed.connect(self.impose_order)
        self.measure_button = PushButton(text="Re-measure")
        self.measure_button.changed.connect(self.remeasure)
        self.table = Table(value={"metric": [], "value": []})
        self.metrics: dict = {}
        self.extend([self.labels, self.order_button, self.measure_button])
        self._finish_layout()
        self.append(self.table)

    def impose_order(self):
        """Reorder the chosen labels layer in a worker (undo: napari's history is kept)."""
        from skinoct.napari._correct import ordering_violations, reorder_mask

        layer = self.layer(self.labels)
        data = np.asarray(layer.data).copy()

        def work():
            yield 0, 1, f"{ordering_violations(data)} out-of-order column(s); reordering…"
            return reorder_mask(data)

        def done(fixed):
            layer.data = fixed
            self.status.value = f"layer order imposed ({ordering_violations(fixed)} left)"

        return self.start(work, done)

    def remeasure(self):
        """Measure the corrected section; update boundaries and the table."""
        layer = self.layer(self.labels)
        if layer.ndim != 2:
            from skinoct.errors import InputError

            raise InputError("re-measuring works on a section (2-D labels)")
        data, spacing = np.asarray(layer.data).copy(), scale_of(layer)
        stem = layer.name.removesuffix(" layers")

        def work():
            yield 0, 1, "measuring…"
            return _measure_layers(data, spacing, stem)

        def done(out):
            metrics, shapes = out
            self.metrics = metrics
            layer.metadata["skinoct_metrics"] = metrics
            self.add_layers(shapes)
            self.table.value = section_metrics_rows(metrics) if "error" not in metrics else {
                "metric": ["error"], "value": [metrics["error"]]}  # fmt: skip
            self.status.value = "re-measured"

        return self.start(work, done)
