"""Save as training pair, Annotate next and Fine-tune widgets: corrections → training data
→ a fine-tuned model."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import napari
import napari.layers
import numpy as np
from magicgui.widgets import (
    CheckBox,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
    Table,
)

from skinoct.napari._base import WorkerWidget, scale_of, widgets_of

__all__ = ["AnnotateNextWidget", "FineTuneWidget", "SaveTrainingPairWidget", "dej_uncertainty"]

_ENTROPY_BAND_UM = 5.0


def dej_uncertainty(entropy: np.ndarray, labels: np.ndarray, spacing_um) -> float:
    """Mean normalised entropy within ±5 µm of a section's DEJ (1.0 where no DEJ is found).

    The uncertainty measure of seed 000 (softmax entropy as an indicator of atypical
    morphology), averaged along the DEJ: the higher, the more a correction teaches.
    """
    from skinoct.errors import InputError
    from skinoct.morphometry import dej_entropy, extract_boundaries

    try:
        dej = extract_boundaries(labels, spacing_um, smoothing_um=0).dej
    except InputError:
        return 1.0
    if not np.isfinite(dej).any():
        return 1.0
    per_column = dej_entropy(entropy, dej, float(spacing_um[0]), band_um=_ENTROPY_BAND_UM)
    return float(np.nanmean(per_column)) if np.isfinite(per_column).any() else 1.0


def _path_value(widget) -> Path | None:
    value = str(widget.value or "").strip()
    return Path(value) if value not in ("", ".") else None


class SaveTrainingPairWidget(WorkerWidget):
    """Write the image and the corrected mask into a dataset in ``layers train``'s layout."""

    kind = "save"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.image = self._layer_combo("image", napari.layers.Image, ndim=(2,))
        self.labels = self._layer_combo("labels", napari.layers.Labels, ndim=(2,))
        self.dataset = FileEdit(label="dataset folder", mode="d", value="")
        self.subject = LineEdit(label="subject", value="")
        self.subject.tooltip = "Asked once: groups this subject's sections in one CV fold."
        self.pair_id = LineEdit(label="id (default: image name)", value="")
        self.overwrite = CheckBox(label="replace an existing pair", value=False)
        self.save_button = PushButton(text="Save as training pair")
        self.save_button.changed.connect(self.save)
        self.saved: list = []
        self.extend([self.image, self.labels, self.dataset, self.subject, self.pair_id,
                     self.overwrite, self.save_button])  # fmt: skip
        self._finish_layout()

    def save(self):
        """Write the pair (in a worker); an existing id needs the *replace* box ticked."""
        from skinoct.datasets import add_training_pair
        from skinoct.errors import InputError

        image, labels = self.layer(self.image), self.layer(self.labels)
        root = _path_value(self.dataset)
        if root is None:
            raise InputError("choose a dataset folder")
        pair_id = self.pair_id.value.strip() or image.name.replace(" ", "_")
        subject = self.subject.value.strip() or None
        data, mask = np.asarray(image.data), np.asarray(labels.data).copy()
        spacing, overwrite = scale_of(image), bool(self.overwrite.value)

        def work():
            yield 0, 1, "saving…"
            return add_training_pair(root, data, mask, id=pair_id, subject=subject,
                                     spacing_um=spacing, overwrite=overwrite)  # fmt: skip

        def done(record):
            self.saved.append(record)
            self.overwrite.value = False  # ask again for the next pair
            self.status.value = f"saved {record.id} (subject {record.subject}) in {root}"

        return self.start(work, done)


class AnnotateNextWidget(WorkerWidget):
    """Rank the sections of a volume (or of a folder of sections) by DEJ uncertainty."""

    kind = "annotate"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.volume = self._layer_combo("volume", napari.layers.Image, ndim=(3,))
        self.folder = FileEdit(label="or a folder of sections", mode="d", value="")
        self.rank_button = PushButton(text="Rank by DEJ uncertainty")
        self.rank_button.changed.connect(self.rank)
        self.show_button = PushButton(text="Go to the most uncertain")
        self.show_button.changed.connect(self.show_next)
        self.table = Table(value={"section": [], "dej_uncertainty": []})
        self.ranking: list[tuple[str, float]] = []
        self.extend([self.volume, self.folder, self.rank_button, self.show_button])
        self._finish_layout()
        self.append(self.table)

    def _sections(self) -> tuple[Iterator, int]:
        from skinoct.io import IMAGE_SUFFIXES, natural_sort_key, read_image

        folder = _path_value(self.folder)
        if folder is not None:
            files = sorted((p for p in folder.iterdir() if p.is_file()
                            and p.name.lower().endswith(IMAGE_SUFFIXES)), key=natural_sort_key)
            def from_files():  # fmt: skip
                for f in files:
                    image = read_image(f, axes="zx")
                    yield f.name, np.asarray(image.data), image.spacing_um
            return from_files(), len(files)
        layer = self.layer(self.volume)
        data, (dz, _, dx) = layer.data, scale_of(layer)

        def from_volume():
            for y in range(data.shape[1]):
                yield f"y={y}", np.asarray(data[:, y, :]), (dz, dx)

        return from_volume(), int(data.shape[1])

    def rank(self):
        """Segment every section in a worker and sort them, most uncertain first."""
        sections, total = self._sections()
        model_dir = _segment_model(self.viewer)

        def work():
            from skinoct.layers import load_layers_model, segment_section

            model = load_layers_model(model_dir)
            scores = []
            for i, (name, image, spacing) in enumerate(sections):
                yield i, total, f"section {i + 1}/{total}"
                result = segment_section(image, model, spacing_um=spacing)
                scores.append((name, dej_uncertainty(result.entropy, result.labels, spacing)))
            return sorted(scores, key=lambda item: -item[1])

        def done(ranking):
            self.ranking = ranking
            self.table.value = {
                "section": [name for name, _ in ranking],
                "dej_uncertainty": [round(score, 4) for _, score in ranking],
            }
            self.status.value = f"ranked {len(ranking)} sections"

        return self.start(work, done)

    def show_next(self) -> None:
        """Move the viewer to the most uncertain section of the volume (y slider)."""
        if self.ranking and self.ranking[0][0].startswith("y="):
            self.viewer.dims.set_point(1, int(self.ranking[0][0][2:]) * scale_of(
                self.layer(self.volume))[1])  # fmt: skip


def _segment_model(viewer) -> Path | None:
    segment = widgets_of(viewer).get("segment")
    return segment.model_path() if segment is not None else None


class FineTuneWidget(WorkerWidget):
    """Fine-tune the current layer model on a dataset folder, within a time budget.

    Training runs in rounds of one epoch (:func:`skinoct.layers.train_layers`, no
    cross-validation, ``init`` = the previous round's model); after each round the
    model directory holds a complete model, so the time budget or Cancel stops
    between rounds without losing work. Loss and learning rate are shown live.
    """

    kind = "finetune"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, label=False)
        self.dataset = FileEdit(label="dataset folder", mode="d", value="")
        self.out_dir = FileEdit(label="new model folder", mode="d", value="")
        self.epochs = SpinBox(label="epochs (max)", value=5, min=1, max=500)
        self.budget_min = FloatSpinBox(label="time budget (min)", value=10.0, min=0.05, max=600)
        self.patch = SpinBox(label="patch (px)", value=128, min=32, max=512, step=16)
        self.run_button = PushButton(text="Fine-tune")
        self.run_button.changed.connect(self.run)
        self.switch_button = PushButton(text="Use the new model in Segment", enabled=False)
        self.switch_button.changed.connect(self.switch_model)
        self.table = Table(value={"epoch": [], "train_loss": []})
        self.history: list[dict] = []
        self.model_dir: Path | None = None
        self.extend([self.dataset, self.out_dir, self.epochs, self.budget_min, self.patch,
                     self.run_button, self.switch_button])  # fmt: skip
        self._finish_layout()
        self.append(self.table)

    def config(self, *, divisor: int = 16):
        """The training options; the patch rounded up to the network's ``divisor`` (a
        model trained with more levels needs multiples of 32, 64, ...)."""
        from skinoct.layers import TrainConfig

        size = -(-int(self.patch.value) // divisor) * divisor
        return TrainConfig(folds=0, epochs=1, patch=(size, size), batch_size=4,
                           patches_per_section=2, device="cpu", num_workers=0)  # fmt: skip

    def run(self):
        """Train in a worker; yields live loss; enables *Use the new model* when done."""
        from skinoct.errors import InputError

        data, out = _path_value(self.dataset), _path_value(self.out_dir)
        if data is None or out is None:
            raise InputError("choose the dataset folder and a folder for the new model")
        init = _segment_model(self.viewer)
        epochs, budget_s = int(self.epochs.value), float(self.budget_min.value) * 60
        self.history = []

        def work():
            from skinoct.layers import load_layers_model, train_layers
            from skinoct.models import bundled_model_dir

            start = time.monotonic()
            previous = init if init is not None else bundled_model_dir("layers")
            config = self.config(divisor=load_layers_model(previous).spec.divisor)
            rounds = out.parent / f".{out.name}.rounds"
            events: list[dict] = []
            for epoch in range(1, epochs + 1):
                if time.monotonic() - start > budget_s:
                    break
                yield epoch - 1, epochs, f"epoch {epoch}/{epochs}…"
                target = rounds / f"epoch_{epoch:03d}"
                train_layers(data, target, replace(config, seed=epoch), init=previous,
                             restart=True, callback=events.append)  # fmt: skip
                losses = [e for e in events if e["event"] == "epoch"]
                row = {"epoch": epoch, "train_loss": round(losses[-1]["train_loss"], 4)}
                self.history.append(row)
                yield epoch, epochs, f"epoch {epoch}: loss {row['train_loss']}"
                if out.exists():
                    shutil.rmtree(out)
                shutil.copytree(target, out)
                if previous != init and Path(previous).parent == rounds:
                    shutil.rmtree(previous, ignore_errors=True)
                previous = target
            shutil.rmtree(rounds, ignore_errors=True)
            return out if (out / "model.json").is_file() else None

        def done(model_dir):
            self.model_dir = model_dir
            self.switch_button.enabled = model_dir is not None
            self.status.value = (f"model written to {model_dir}" if model_dir
                                 else "time budget ended before the first epoch")  # fmt: skip

        worker = self.start(work, done)
        worker.yielded.connect(self._show_history)
        return worker

    def _show_history(self, _update=None) -> None:
        self.table.value = {
            "epoch": [r["epoch"] for r in self.history],
            "train_loss": [r["train_loss"] for r in self.history],
        }

    def switch_model(self) -> None:
        """Point the Segment widget at the fine-tuned model."""
        segment = widgets_of(self.viewer).get("segment")
        if segment is not None and self.model_dir is not None:
            segment.model_dir.value = str(self.model_dir)
            self.status.value = f"Segment now uses {self.model_dir}"
