import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import (
    Image,
    normalize_intensity,
    read_image,
    read_mask,
    validate_labels,
    write_image,
)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.tif: file not found"):
        read_image(tmp_path / "nope.tif")


def test_truncated_tiff(tmp_path):
    path = write_image(tmp_path / "t.tif", np.zeros((64, 64), np.uint16), spacing_um=1, axes="zx")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match=r"t\.tif: cannot read TIF"):
        read_image(path)


def test_not_a_tiff(tmp_path):
    path = tmp_path / "junk.tif"
    path.write_text("hello")
    with pytest.raises(InputError, match="junk.tif: cannot read TIF"):
        read_image(path)


def test_empty_array(tmp_path):
    path = tmp_path / "e.npy"
    np.save(path, np.zeros((0, 5)))
    with pytest.raises(InputError, match="empty"):
        read_image(path)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5)])
def test_wrong_ndim(tmp_path, shape):
    path = tmp_path / "d.npy"
    np.save(path, np.zeros(shape))
    with pytest.raises(InputError, match="expected a 2-D image or a 3-D volume"):
        read_image(path)


def test_volume_required(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.zeros((4, 4)))
    from skinoct.io import read_volume

    with pytest.raises(InputError, match="expected a 3-D volume"):
        read_volume(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(tmp_path, bad):
    data = np.ones((4, 4), np.float32)
    data[1, 1] = bad
    path = tmp_path / "n.npy"
    np.save(path, data)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_image(path)


def test_foreign_labels(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.array([[0, 1], [5, 7]], np.uint8))
    with pytest.raises(InputError, match=r"m\.npy: label mask holds values 5, 7"):
        read_mask(path)


def test_non_integer_mask():
    with pytest.raises(InputError, match="non-integer"):
        validate_labels(np.array([[0.5, 1.0]]))


@pytest.mark.parametrize("spacing", [(0, 1), (-1, 1), (1, float("nan")), (1, 2, 3)])
def test_bad_spacing(spacing):
    with pytest.raises(InputError, match="spacing"):
        Image(np.zeros((3, 3)), spacing, "zx")


def test_normalize_keeps_float_range():
    data = np.linspace(-10, 10, 1001, dtype=np.float32)
    out = normalize_intensity(data, lower_percentile=10, upper_percentile=90)
    assert out.min() < 0 and out.max() > 1  # not clipped
    assert out[100] == pytest.approx(0, abs=1e-4) and out[900] == pytest.approx(1, abs=1e-4)
    assert normalize_intensity(data, clip=True).max() == 1


def test_normalize_same_for_integer_types():
    base = np.arange(256, dtype=np.uint8).reshape(16, 16)
    a = normalize_intensity(base)
    b = normalize_intensity(base.astype(np.uint16) * 257)
    np.testing.assert_allclose(a, b, atol=1e-5)


_LABEL_VALUES_OK = (([0, 1, 2, 3], True), ([0, 3], True), ([0, 4], False), ([-1, 2], False),
                    ([0, 255], False))  # fmt: skip
_LABEL_CASES = [
    (dtype, values, ok)
    for dtype in (np.uint8, np.int8, np.int16, np.uint16, np.int64)
    for values, ok in _LABEL_VALUES_OK
    if np.iinfo(dtype).min <= min(values) and max(values) <= np.iinfo(dtype).max
]


@pytest.mark.parametrize(("dtype", "values", "ok"), _LABEL_CASES)
def test_validate_labels_same_verdict_for_every_integer_type(dtype, values, ok):
    data = np.array(values, dtype=dtype)
    if ok:
        out = validate_labels(data)
        assert out.dtype == np.uint8 and out.tolist() == values
    else:
        with pytest.raises(InputError, match="outside the skinoct labels"):
            validate_labels(data)


def test_validate_labels_indeterminate_only_when_allowed():
    data = np.array([0, 2, 255, 3], np.uint8)
    assert validate_labels(data, allow_indeterminate=True).tolist() == [0, 2, 255, 3]
    with pytest.raises(InputError, match="255"):
        validate_labels(data)
