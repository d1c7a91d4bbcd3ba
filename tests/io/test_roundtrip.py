import numpy as np
import pytest
import tifffile

from skinoct.io import Image, SpacingWarning, read_image, read_mask, read_volume, write_image

RNG = np.random.default_rng(0)


def _section(dtype):
    if dtype == np.float32:
        data = RNG.normal(size=(17, 23)).astype(np.float32) * 100  # negatives kept, not clipped
    else:
        data = RNG.integers(0, np.iinfo(dtype).max, size=(17, 23)).astype(dtype)
    return Image(data, (0.5, 1.2), "zx")


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".npz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_roundtrip_with_spacing(tmp_path, suffix, dtype):
    image = _section(dtype)
    path = write_image(tmp_path / f"a{suffix}", image)
    back = read_image(path)
    assert back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, image.data)
    assert back.spacing_um == pytest.approx(image.spacing_um)
    assert back.axes == "zx"
    assert back.spacing_source == "metadata"


def test_enface_axes_survive_ome(tmp_path):
    image = Image(RNG.random((8, 9)).astype(np.float32), (1.5, 1.5), "yx")
    back = read_image(write_image(tmp_path / "e.tif", image))
    assert back.axes == "yx"


@pytest.mark.parametrize("suffix", [".tif", ".npz"])
def test_volume_roundtrip(tmp_path, suffix):
    vol = Image(RNG.integers(0, 4000, (4, 6, 7)).astype(np.uint16), (2.0, 0.8, 1.1), "zyx")
    back = read_volume(write_image(tmp_path / f"v{suffix}", vol))
    np.testing.assert_array_equal(back.data, vol.data)
    assert back.spacing_um == pytest.approx((2.0, 0.8, 1.1))


@pytest.mark.parametrize(
    "suffix,dtype", [(".png", np.uint8), (".png", np.uint16), (".bmp", np.uint8)]
)
def test_pil_roundtrip_lossless(tmp_path, suffix, dtype):
    data = RNG.integers(0, np.iinfo(dtype).max, (10, 12)).astype(dtype)
    path = write_image(tmp_path / f"p{suffix}", data, spacing_um=(1, 1), axes="zx")
    with pytest.warns(SpacingWarning, match="p" + suffix):
        back = read_image(path)
    np.testing.assert_array_equal(back.data, data)
    assert back.spacing_source == "default"


def test_jpeg_is_lossy_but_readable(tmp_path):
    data = np.full((16, 16), 128, np.uint8)
    path = write_image(tmp_path / "j.jpg", data, spacing_um=1, axes="zx")
    back = read_image(path, spacing_um=(1, 1))
    assert np.abs(back.data.astype(int) - 128).max() <= 2


def test_npy_spacing_override(tmp_path):
    data = RNG.random((5, 5)).astype(np.float64)
    path = write_image(tmp_path / "a.npy", data, spacing_um=1, axes="zx")
    back = read_image(path, spacing_um=(0.7, 0.9))
    assert back.spacing_um == (0.7, 0.9)
    assert back.spacing_source == "override"
    np.testing.assert_array_equal(back.data, data)


def test_imagej_metadata_written_by_tifffile(tmp_path):
    vol = RNG.integers(0, 255, (3, 8, 10)).astype(np.uint8)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, vol, imagej=True, resolution=(1 / 1.25, 1 / 0.75),
        metadata={"spacing": 2.5, "unit": "um", "axes": "ZYX"},
    )  # fmt: skip
    back = read_volume(path)
    assert back.spacing_um == pytest.approx((2.5, 0.75, 1.25))


def test_ome_metadata_in_other_units(tmp_path):
    path = tmp_path / "mm.ome.tif"
    tifffile.imwrite(
        path, np.zeros((2, 4, 4), np.uint8), ome=True, photometric="minisblack",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.002, "PhysicalSizeXUnit": "mm",
                  "PhysicalSizeY": 0.001, "PhysicalSizeYUnit": "mm",
                  "PhysicalSizeZ": 3.0, "PhysicalSizeZUnit": "µm"},
    )  # fmt: skip
    assert read_volume(path).spacing_um == pytest.approx((3.0, 1.0, 2.0))


def test_plain_tiff_without_metadata_warns_once(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), metadata=None)
    with pytest.warns(SpacingWarning, match="plain.tif"):
        read_image(path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path)  # second read of the same file: no second warning


def test_folder_of_slices_natural_sort(tmp_path):
    for i in (10, 2, 1):
        write_image(
            tmp_path / f"slice{i}.png", np.full((4, 5), i, np.uint8), spacing_um=1, axes="yx"
        )
    vol = read_volume(tmp_path, spacing_um=(1, 1, 1))
    assert vol.shape == (3, 4, 5)
    assert vol.data[:, 0, 0].tolist() == [1, 2, 10]


def test_mask_roundtrip_and_validation(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[2:, :] = 2
    mask[4:, :] = 3
    back = read_mask(write_image(tmp_path / "m.tif", mask, spacing_um=(1, 2), axes="zx"))
    np.testing.assert_array_equal(back.data, mask)
    assert back.spacing_um == (1.0, 2.0)


def test_memmap_reading(tmp_path):
    vol = Image(RNG.integers(0, 4000, (4, 6, 7)).astype(np.uint16), (1, 1, 1), "zyx")
    back = read_volume(write_image(tmp_path / "v.tif", vol), mmap=True)
    assert isinstance(back.data, np.memmap)
    np.testing.assert_array_equal(np.asarray(back.data), vol.data)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(ValueError):
        write_image(target, np.zeros((4, 4), np.float32), spacing_um=1, axes="zx")
    assert list(tmp_path.iterdir()) == []


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    from skinoct.io import write_text

    umask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644


@pytest.mark.parametrize("suffix", [".tif", ".npz"])
def test_same_input_gives_identical_bytes(tmp_path, suffix):
    import time

    image = Image(np.arange(12, dtype=np.uint16).reshape(3, 4), (0.5, 1.0), "zx")
    first = write_image(tmp_path / f"a{suffix}", image).read_bytes()
    time.sleep(1.1)  # zip and OME stamps have one-second resolution
    assert write_image(tmp_path / f"b{suffix}", image).read_bytes() == first


def test_json_safe_converts_numpy_and_non_finite():
    from skinoct.io import json_safe

    out = json_safe(
        {"a": np.float32(1.5), "b": np.array([1, 2]), "c": float("nan"), 3: (np.int64(4),)}
    )
    assert out == {"a": 1.5, "b": [1, 2], "c": None, "3": [4]}


def test_atomic_files_get_normal_permissions_when_the_writer_replaces_the_temp_file(tmp_path):
    import os

    from skinoct.io import atomic_path
    from skinoct.models import save_artifact

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.unlink()  # like safetensors: a new, owner-only file under the temp name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        save_artifact(tmp_path / "m", {}, {"task": "t", "architecture": {}})
    finally:
        os.umask(umask)
    assert ((tmp_path / "b.bin").stat().st_mode & 0o777) == 0o644
    assert ((tmp_path / "m" / "model.safetensors").stat().st_mode & 0o777) == 0o644
