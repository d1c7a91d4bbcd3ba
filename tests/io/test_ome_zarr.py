"""OME-Zarr (NGFF 0.4 / 0.5): round trips, lazy reading, spec validity, analyze equivalence."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("zarr")

from skinoct.errors import InputError
from skinoct.io import (
    Image,
    LazyArray,
    read_image,
    read_ome_zarr_labels,
    read_volume,
    write_image,
    write_ome_zarr,
)

RNG = np.random.default_rng(7)
VOLUME = RNG.integers(0, 4000, size=(12, 6, 9)).astype(np.uint16)
LABELS = np.repeat(np.minimum(np.arange(12) // 3, 3)[:, None, None], 6, 1).repeat(9, 2)
LABELS = LABELS.astype(np.uint8)
SPACING = (1.0, 4.0, 2.5)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_volume_labels_and_spacing_round_trip(tmp_path, version):
    path = write_ome_zarr(
        tmp_path / "v.ome.zarr", Image(VOLUME, SPACING, "zyx"), labels=LABELS, version=version
    )
    image = read_volume(path)
    assert isinstance(image.data, LazyArray)  # nothing loaded yet
    assert image.shape == VOLUME.shape and image.spacing_um == SPACING
    assert image.spacing_source == "metadata" and image.axes == "zyx"
    np.testing.assert_array_equal(np.asarray(image.data), VOLUME)
    labels = read_ome_zarr_labels(path)
    assert labels is not None and labels.spacing_um == SPACING
    np.testing.assert_array_equal(labels.data, LABELS)
    marker = ".zattrs" if version == "0.4" else "zarr.json"
    assert (path / marker).is_file() and (path / "labels" / "layers" / marker).is_file()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_written_files_validate_against_the_ngff_models(tmp_path, version):
    models = pytest.importorskip("ome_zarr_models")
    import zarr

    path = write_ome_zarr(
        tmp_path / "v.ome.zarr", Image(VOLUME, SPACING, "zyx"), labels=LABELS, version=version
    )
    group = models.open_ome_zarr(zarr.open_group(str(path), mode="r"))
    assert type(group).__module__.split(".")[1] == ("v04" if version == "0.4" else "v05")
    label = models.open_ome_zarr(zarr.open_group(str(path / "labels" / "layers"), mode="r"))
    assert "Label" in type(label).__name__


def test_two_d_sections_keep_their_axes(tmp_path):
    section = RNG.random((20, 30)).astype(np.float32)
    path = write_ome_zarr(tmp_path / "s.ome.zarr", Image(section, (1.5, 2.0), "zx"))
    image = read_image(path)
    assert image.axes == "zx" and image.spacing_um == (1.5, 2.0)
    enface = write_ome_zarr(tmp_path / "e.ome.zarr", Image(section, (2.0, 2.0), "yx"))
    assert read_image(enface).axes == "yx"


def test_lazy_indexing_matches_numpy(tmp_path):
    path = write_ome_zarr(tmp_path / "v.ome.zarr", Image(VOLUME, SPACING, "zyx"), chunks=(4, 2, 3))
    lazy = read_volume(path).data
    zi = np.array([[0, 5, 11], [3, 3, 7]])
    yy, xx = np.arange(1, 3)[:, None], np.arange(4, 7)[None, :]
    for key in [
        (slice(None), 2, slice(None)),
        (slice(2, 9), [1, 4], slice(None)),
        (zi, yy, xx),
        (3, slice(None), [0, 8]),
        (-1,),
        (Ellipsis, 4),
    ]:
        np.testing.assert_array_equal(lazy[key], VOLUME[key])
    assert np.min(lazy) == VOLUME.min() and np.max(lazy) == VOLUME.max()


def test_ngff_scale_units_and_singleton_channel_are_read(tmp_path):
    """A file written by another tool: t, c axes of length 1, spacing in mm, global scale."""
    import zarr

    path = tmp_path / "other.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = root.create_array("s0", shape=(1, 1, 4, 5, 6), chunks=(1, 1, 4, 5, 6), dtype="u1")
    array[...] = 7
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        *({"name": n, "type": "space", "unit": "millimeter"} for n in "zyx"),
    ]
    scale = [{"type": "scale", "scale": [1, 1, 0.001, 0.002, 0.003]}]
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": axes,
        "datasets": [{"path": "s0", "coordinateTransformations": scale}],
        "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2, 2]}],
    }]  # fmt: skip
    image = read_image(path)
    assert image.shape == (4, 5, 6)
    np.testing.assert_allclose(image.spacing_um, (2.0, 4.0, 6.0))
    assert read_image(path, spacing_um=1).spacing_um == (1.0, 1.0, 1.0)


def test_errors_are_input_errors(tmp_path):
    import zarr

    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    with pytest.raises(InputError, match="multiscales"):
        read_image(plain)
    path = write_ome_zarr(tmp_path / "v.ome.zarr", Image(VOLUME, SPACING, "zyx"))
    with pytest.raises(InputError, match="already exists"):
        write_ome_zarr(path, Image(VOLUME, SPACING, "zyx"))
    with pytest.raises(InputError, match="shape"):
        write_ome_zarr(tmp_path / "w.zarr", Image(VOLUME, SPACING, "zyx"), labels=LABELS[:2])
    with pytest.raises(InputError, match="outside"):
        write_ome_zarr(tmp_path / "w.zarr", Image(VOLUME, SPACING, "zyx"), labels=LABELS + 4)
    assert not (tmp_path / "w.zarr").exists()
    assert read_ome_zarr_labels(path) is None


def test_inspect_reports_an_ome_zarr_volume(tmp_path, run_cli):
    path = write_ome_zarr(tmp_path / "v.ome.zarr", Image(VOLUME, SPACING, "zyx"))
    code, out, _ = run_cli("inspect", path, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["kind"] == "volume" and record["shape"] == list(VOLUME.shape)
    assert record["spacing_um"] == list(SPACING) and record["storage"].startswith("OME-Zarr")
    assert record["max"] == VOLUME.max()


@pytest.mark.slow
def test_analyze_gives_the_same_numbers_on_ome_zarr_as_on_ome_tiff(tmp_path, monkeypatch):
    """Bundled models on a small phantom volume; the Zarr volume is never loaded whole."""
    from skinoct.phantom import VolumeParams, render_volume
    from skinoct.study import analyze_volume

    phantom = render_volume(
        VolumeParams(size_um=(160, 100, 300), spacing_um=(1.0, 4.0, 3.0)), seed=3
    )
    image = Image(phantom.volume, phantom.spacing_um, "zyx")
    tif = write_image(tmp_path / "v.ome.tif", image)
    zarr_path = write_ome_zarr(tmp_path / "v.ome.zarr", image)
    options = {"tile_size_um": 80.0, "depth_stop_um": 20, "n_tiles": 1, "n_overlays": 0}
    from_tif = analyze_volume(tif, **options)

    def whole(self, *args, **kwargs):
        raise AssertionError("analyze loaded the whole OME-Zarr volume")

    monkeypatch.setattr(LazyArray, "__array__", whole)
    from_zarr = analyze_volume(zarr_path, **options)
    assert from_zarr["score"] == from_tif["score"]
    assert from_zarr["metrics"] == from_tif["metrics"]
    for key, values in from_tif["profile"].items():  # NaN where a depth has no tile
        np.testing.assert_array_equal(from_zarr["profile"][key], values, err_msg=key)
    assert from_zarr["input"]["spacing_um"] == list(phantom.spacing_um)
