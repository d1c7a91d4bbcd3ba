"""Every widget runs on phantom data in a worker and adds what it should; the
correct → save → fine-tune loop ends in a model directory."""

from __future__ import annotations

import json

import napari.layers
import numpy as np
import pytest

from skinoct.layers import discover_dataset
from skinoct.napari._correct import ordering_violations, reorder_mask
from skinoct.napari._training import (
    AnnotateNextWidget,
    FineTuneWidget,
    SaveTrainingPairWidget,
)
from skinoct.napari._widgets import AnalyzeWidget, CorrectWidget, SegmentWidget


def _messy(labels: np.ndarray, rng) -> np.ndarray:
    """A true mask with painted mistakes: dermis islands in the epidermis, air under skin."""
    bad = labels.copy()
    for _ in range(6):
        z, x = rng.integers(0, labels.shape[0] - 6), rng.integers(0, labels.shape[1] - 6)
        bad[z : z + 5, x : x + 5] = rng.integers(0, 4)
    return bad


def test_reorder_mask_leaves_no_out_of_order_column(phantom_section_image):
    _, labels = phantom_section_image
    rng = np.random.default_rng(1)
    bad = _messy(labels, rng)
    assert ordering_violations(bad) > 0
    fixed = reorder_mask(bad)
    assert ordering_violations(fixed) == 0
    assert (fixed == labels).mean() > 0.97  # the painted mistakes go, the rest stays
    np.testing.assert_array_equal(reorder_mask(labels), labels)  # a valid mask is kept


def test_segment_section_adds_labels_entropy_boundaries_and_metrics(
    make_napari_viewer, wait, phantom_section_image
):
    image, _ = phantom_section_image
    viewer = make_napari_viewer()
    viewer.add_image(image.data, scale=image.spacing_um, name="sec")
    widget = SegmentWidget(viewer)
    widget.image.value = "sec"
    worker = widget.run()
    assert worker is not None and widget.busy  # runs in a worker thread
    wait(widget)
    labels = viewer.layers["sec layers"]
    assert isinstance(labels, napari.layers.Labels) and labels.data.shape == image.shape
    assert tuple(labels.scale) == image.spacing_um
    assert set(np.unique(labels.data)) <= {0, 1, 2, 3} and (labels.data == 3).any()
    entropy = viewer.layers["sec entropy"]
    assert entropy.colormap.name == "plasma"
    assert isinstance(viewer.layers["sec boundaries"], napari.layers.Shapes)
    assert isinstance(viewer.layers["sec uncertain DEJ"], napari.layers.Shapes)
    assert widget.metrics["epidermis_thickness_um"]["mean"] > 0
    table = widget.table.to_dict("list")
    assert "epidermis_thickness_um_mean" in table["metric"]


def test_segment_volume_and_annotate_next(make_napari_viewer, wait, phantom_volume_image):
    image, _ = phantom_volume_image
    viewer = make_napari_viewer()
    viewer.add_image(image.data, scale=image.spacing_um, name="vol")
    segment = SegmentWidget(viewer)
    segment.image.value = "vol"
    segment.run()
    wait(segment)
    assert viewer.layers["vol layers"].data.shape == image.shape
    annotate = AnnotateNextWidget(viewer)
    annotate.volume.value = "vol"
    annotate.rank()
    wait(annotate)
    scores = [s for _, s in annotate.ranking]
    assert len(scores) == image.shape[1] and scores == sorted(scores, reverse=True)
    annotate.show_next()
    y_um = int(annotate.ranking[0][0][2:]) * image.spacing_um[1]
    assert viewer.dims.point[1] == pytest.approx(y_um)


def test_analyze_volume_shows_the_dej_surface_maps_and_profile(
    make_napari_viewer, wait, phantom_volume_image, tmp_path
):
    image, _ = phantom_volume_image
    viewer = make_napari_viewer()
    viewer.add_image(image.data, scale=image.spacing_um, name="vol")
    widget = AnalyzeWidget(viewer)
    widget.volume.value = "vol"
    widget.tile_um.value, widget.depth_stop.value = 80.0, 10.0
    widget.out_dir.value = str(tmp_path / "out")
    widget.run()
    wait(widget, timeout_s=300)
    assert isinstance(viewer.layers["vol DEJ surface"], napari.layers.Surface)
    assert viewer.layers["vol epidermis_thickness_um"].data.shape == image.shape[1:]
    assert widget.result["score"] == json.loads((tmp_path / "out" / "analysis.json").read_text())[
        "score"]  # fmt: skip
    tiles = viewer.layers["vol tiles 20 µm"]  # the tiles graded 20 µm below the DEJ
    assert isinstance(tiles, napari.layers.Shapes) and len(tiles.data) >= 1
    assert len(widget.tile_grades) == len(tiles.data)
    assert all(1 <= g <= 4 for g in widget.tile_grades)
    assert list(tiles.features["grade"]) == widget.tile_grades
    assert viewer.layers["vol en-face 20 µm below DEJ"].data.shape == image.shape[1:]
    axes = widget.canvas.figure.axes[0]
    assert axes.get_ylabel() == "depth below DEJ (µm)" and len(axes.lines[0].get_xdata()) == 10


def test_finetune_patch_is_rounded_up_to_the_network_divisor(make_napari_viewer):
    """A model trained with more levels needs patches in multiples of 32, 64, ..."""
    finetune = FineTuneWidget(make_napari_viewer())
    finetune.patch.value = 96
    assert finetune.config().patch == (96, 96)
    assert finetune.config(divisor=64).patch == (128, 128)


def test_correct_save_finetune_loop(
    make_napari_viewer, wait, phantom_section_image, tmp_path, run_cli
):
    """Paint mistakes, re-impose the order, save two pairs, fine-tune, switch the model."""
    image, truth = phantom_section_image
    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        viewer.add_image(image.data, scale=image.spacing_um, name=name)
        viewer.add_labels(_messy(truth, rng), scale=image.spacing_um, name=f"{name} layers")
    correct = CorrectWidget(viewer)
    save = SaveTrainingPairWidget(viewer)
    save.dataset.value = str(tmp_path / "data")
    save.subject.value = "P01"
    for name in ("a", "b"):
        correct.labels.value = f"{name} layers"
        correct.impose_order()
        wait(correct)
        assert ordering_violations(viewer.layers[f"{name} layers"].data) == 0
        correct.remeasure()
        wait(correct)
        assert correct.metrics["epidermis_thickness_um"]["mean"] > 0
        save.image.value, save.labels.value = name, f"{name} layers"
        save.save()
        wait(save)
    dataset = discover_dataset(tmp_path / "data")
    assert dataset.ids == ["a", "b"] and dataset.subjects.tolist() == ["P01", "P01"]
    save.save()  # the same id again, without ticking "replace": refused, nothing changed
    with pytest.raises(AssertionError, match="overwrite"):
        wait(save)
    finetune = FineTuneWidget(viewer)
    finetune.dataset.value = str(tmp_path / "data")
    finetune.out_dir.value = str(tmp_path / "model")
    finetune.epochs.value, finetune.patch.value = 2, 32
    finetune.run()
    wait(finetune, timeout_s=300)
    assert (tmp_path / "model" / "model.json").is_file()
    assert [r["epoch"] for r in finetune.history] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in finetune.history)
    assert finetune.switch_button.enabled
    finetune.switch_model()
    assert segment.model_path() == tmp_path / "model"
    # The saved dataset is what `skinoct layers train` reads, from the command line too
    # (patches of 64: the bundled model's 7 levels need multiples of 64).
    code, _, err = run_cli("layers", "train", tmp_path / "data", "--out", tmp_path / "cli_model",
                           "--folds", "0", "--epochs", "1", "--patch", "64", "64",
                           "--init", tmp_path / "model")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "cli_model" / "model.safetensors").is_file()


def test_measure_layers_flags_the_dej_with_the_models_calibration():
    """The Segment widget's metrics use the chosen model's flag, not the bundled one's."""
    import types

    from skinoct.napari._widgets import _measure_layers

    spacing = (1.0, 1.0)
    labels = np.zeros((80, 120), np.uint8)
    labels[10:15], labels[15:40], labels[40:] = 1, 2, 3  # DEJ at 40 µm
    entropy = np.zeros(labels.shape, np.float32)
    entropy[36:45, 10:40] = 0.9  # a 30 µm uncertain stretch around the DEJ
    calibrated = {"dej_entropy_threshold": 0.2, "entropy_band_um": 3.0, "min_segment_um": 20.0}
    model = types.SimpleNamespace(manifest={"uncertainty": calibrated})
    metrics, _ = _measure_layers(labels, spacing, "s", entropy, model=model)
    assert metrics["dej_uncertain_segments"] == [[10.0, 39.0]]
    # with a 40 µm minimum (another model's calibration) the stretch is too short
    model.manifest["uncertainty"]["min_segment_um"] = 40.0
    metrics, _ = _measure_layers(labels, spacing, "s", entropy, model=model)
    assert metrics["dej_uncertain_segments"] == []
