"""Manifest, contribution discovery, reader, writer and sample data of the napari plugin."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
from pathlib import Path

import numpy as np
import pytest

import skinoct.napari
from skinoct.io import Image, read_mask, write_image, write_ome_zarr
from skinoct.napari._reader import get_reader
from skinoct.napari._writer import write_labels

MANIFEST = Path(skinoct.napari.__file__).with_name("napari.yaml")
WIDGETS = {"Segment", "Analyze volume", "Correct", "Save as training pair", "Annotate next",
           "Fine-tune"}  # fmt: skip


def _entry_point() -> bool:
    return any(ep.name == "skinoct" for ep in md.entry_points(group="napari.manifest"))


@pytest.fixture(scope="module")
def plugin_manager():
    import npe2

    pm = npe2.PluginManager.instance()
    if "skinoct" not in pm:
        if _entry_point():
            pm.discover()
        else:  # a checkout used without `pip install -e .[napari]` (the entry point is absent)
            pm.register(npe2.PluginManifest.from_file(MANIFEST))
    return pm


def test_manifest_validates_and_its_commands_import():
    import npe2
    from npe2.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["validate", str(MANIFEST)])
    assert result.exit_code == 0 and "valid" in result.output
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()  # every python_name resolves


def test_entry_point_is_installed_in_ci():
    if os.environ.get("CI") != "true" and not _entry_point():
        pytest.skip("skinoct is not installed from this checkout (pip install -e '.[napari]')")
    assert _entry_point()


def test_contributions_are_discovered(plugin_manager, make_napari_viewer):
    ours = [w for w in plugin_manager.iter_widgets() if w.command.startswith("skinoct.")]
    widgets = {w.display_name for w in ours}
    assert widgets == WIDGETS
    samples = dict(plugin_manager.iter_sample_data())["skinoct"]
    assert {s.key for s in samples} == {"phantom_section", "phantom_volume", "phantom_cohort"}
    readers = [r for r in plugin_manager.iter_compatible_readers(["x.ome.tif"])]
    assert any(r.command == "skinoct.get_reader" for r in readers)
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("skinoct", "Correct")
    assert type(widget).__name__ == "CorrectWidget"


def _layers(path):
    reader = get_reader(str(path))
    assert reader is not None, path
    return reader(str(path))


@pytest.mark.parametrize("suffix", [".ome.tif", ".png", ".npy", ".npz"])
def test_reader_opens_sections_with_their_scale(tmp_path, suffix):
    data = (np.arange(20 * 30).reshape(20, 30) % 251).astype(np.uint8)
    path = tmp_path / f"s{suffix}"
    spacing = (1.5, 2.0) if suffix in (".ome.tif", ".npz") else None
    write_image(path, data, spacing_um=spacing or (1.0, 1.0), axes="zx")
    with pytest.warns(UserWarning) if spacing is None else _nothing():
        ((array, kwargs, kind),) = _layers(path)
    assert kind == "image" and np.asarray(array).shape == (20, 30)
    assert kwargs["scale"] == (spacing or (1.0, 1.0))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_reader_opens_volumes_slice_folders_and_ome_zarr_with_labels(tmp_path):
    volume = np.random.default_rng(0).random((6, 4, 5)).astype(np.float32)
    write_image(tmp_path / "v.ome.tif", volume, spacing_um=(1, 3, 2), axes="zyx")
    ((_, kwargs, kind),) = _layers(tmp_path / "v.ome.tif")
    assert kind == "image" and kwargs["scale"] == (1.0, 3.0, 2.0)
    folder = tmp_path / "slices"
    for k in range(3):
        plane = (volume[k] * 255).astype(np.uint8)
        write_image(folder / f"z{k}.png", plane, spacing_um=1, axes="yx")
    with pytest.warns(UserWarning, match="no spacing"):
        ((array, kwargs, _),) = _layers(folder)
    assert np.asarray(array).shape == (3, 4, 5)
    labels = np.minimum(np.arange(6) // 2, 3)[:, None, None] * np.ones((1, 4, 5), np.uint8)
    zarr_path = write_ome_zarr(
        tmp_path / "v.ome.zarr", Image(volume, (1, 3, 2), "zyx"), labels=labels
    )
    (image, mask) = _layers(zarr_path)
    assert image[2] == "image" and image[1]["scale"] == (1.0, 3.0, 2.0)
    np.testing.assert_array_equal(np.asarray(image[0]), volume)  # a dask array, read lazily
    assert mask[2] == "labels" and mask[1]["scale"] == (1.0, 3.0, 2.0)
    np.testing.assert_array_equal(mask[0], labels)
    assert get_reader(str(tmp_path / "nothing.txt")) is None


def test_reader_opens_a_layers_segment_folder(tmp_path, run_cli, phantom_section_image):
    image, _ = phantom_section_image
    src = write_image(tmp_path / "sec.ome.tif", image)
    code, _, err = run_cli("layers", "segment", src, "--out", tmp_path / "seg")
    assert code == 0, err
    layers = _layers(tmp_path / "seg")
    kinds = {kw["name"]: kind for _, kw, kind in layers}
    assert kinds["sec"] == "image" and kinds["sec layers"] == "labels"
    assert kinds["sec entropy"] == "image" and kinds["sec boundaries"] == "shapes"
    by_name = {kw["name"]: (data, kw) for data, kw, _ in layers}
    assert all(kw["scale"] == image.spacing_um for _, kw in by_name.values())
    assert by_name["sec entropy"][1]["colormap"] == "plasma"
    assert "epidermis_thickness_um" in json.dumps(by_name["sec layers"][1]["metadata"])
    assert len(by_name["sec boundaries"][0]) >= 3  # surface, SC junction, DEJ paths


def test_reader_opens_analyze_and_study_outputs(tmp_path, phantom_volume_image):
    from skinoct.study import analyze_volume

    image, _ = phantom_volume_image
    src = write_image(tmp_path / "v.ome.tif", image)
    out = tmp_path / "study" / "subjects" / "s01"
    analyze_volume(src, out_dir=out, tile_size_um=80.0, depth_stop_um=10, n_tiles=1, n_overlays=0)
    layers = _layers(out)
    kinds = {kw["name"]: kind for _, kw, kind in layers}
    assert kinds == {"v.ome.tif": "image", "DEJ surface": "surface",
                     "epidermis_thickness_um": "image", "stratum_corneum_thickness_um": "image",
                     "dej_entropy": "image"}  # fmt: skip
    surface = next(data for data, kw, _ in layers if kw["name"] == "DEJ surface")
    assert surface[0].shape[1] == 3 and surface[1].shape[1] == 3
    meta = next(kw["metadata"] for _, kw, kind in layers if kind == "surface")
    assert meta["skinoct_score"] is not None and "dej_undulation_index" in meta["skinoct_metrics"]
    study = _layers(tmp_path / "study")
    assert {kw["name"] for _, kw, _ in study} >= {"s01: DEJ surface", "s01: v.ome.tif"}


def test_writer_keeps_the_spacing(tmp_path):
    labels = np.zeros((10, 12), np.uint8)
    labels[3:] = 2
    (written,) = write_labels(str(tmp_path / "m.tif"), labels, {"scale": (1.5, 2.0)})
    mask = read_mask(written)
    assert mask.spacing_um == (1.5, 2.0) and mask.axes == "zx"
    np.testing.assert_array_equal(mask.data, labels)
    from skinoct.errors import InputError

    with pytest.raises(InputError, match="outside"):
        write_labels(str(tmp_path / "bad.tif"), labels + 5, {"scale": (1, 1)})


def test_sample_data_render_seeded_phantoms(tmp_path):
    from skinoct.napari._sample_data import phantom_cohort, phantom_section, phantom_volume

    section = phantom_section()
    assert [kind for *_, kind in section] == ["image", "labels", "shapes"]
    again = phantom_section()
    np.testing.assert_array_equal(section[0][0], again[0][0])
    volume = phantom_volume()
    assert volume[0][0].ndim == 3 and volume[0][1]["scale"] == (1.0, 2.0, 2.0)
    cohort = phantom_cohort(tmp_path / "cohort")
    assert len(cohort) == 6 and (tmp_path / "cohort" / "manifest.csv").is_file()
