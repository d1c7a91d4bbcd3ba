import numpy as np
import pytest
import torch

from skinoct.layers._resample import grid_shape, pad_to_multiple, resample_images, resample_labels


@pytest.mark.parametrize(
    ("shape", "spacing", "target", "expected"),
    [
        ((512, 1200), (1.0, 1.0), (1.0, 2.0), (512, 600)),  # the bundled model's grid
        ((100, 80), (0.5, 2.5), (1.0, 2.0), (50, 100)),  # extent kept: 50 µm x 200 µm
        ((3, 3), (1.0, 1.0), (10.0, 10.0), (1, 1)),  # never below one pixel
    ],
)
def test_grid_shape_keeps_the_physical_extent(shape, spacing, target, expected):
    assert grid_shape(shape, spacing, target) == expected


def test_resample_labels_nearest_pixel_centres():
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    # Halving: centres of the new pixels fall in input pixels 0-1 and 2-3 -> 1 and 3.
    np.testing.assert_array_equal(resample_labels(labels, (1, 2)), [[1, 3]])
    # Doubling repeats each pixel.
    np.testing.assert_array_equal(resample_labels(labels, (1, 8)), [[0, 0, 1, 1, 2, 2, 3, 3]])
    assert resample_labels(labels, labels.shape) is labels


def test_resample_images_identity_and_constant():
    batch = torch.full((2, 1, 7, 9), 3.0)
    assert resample_images(batch, (7, 9)) is batch
    out = resample_images(batch, (4, 5))
    assert out.shape == (2, 1, 4, 5)
    torch.testing.assert_close(out, torch.full((2, 1, 4, 5), 3.0))


@pytest.mark.parametrize("shape", [(5, 7), (16, 33), (2, 2)])
def test_pad_to_multiple_pads_bottom_right_only(shape):
    batch = torch.arange(shape[0] * shape[1], dtype=torch.float32).reshape(1, 1, *shape)
    out = pad_to_multiple(batch, 16)
    assert out.shape[-2] % 16 == 0 and out.shape[-1] % 16 == 0
    assert out.shape[-2] - shape[0] < 16 and out.shape[-1] - shape[1] < 16
    torch.testing.assert_close(out[..., : shape[0], : shape[1]], batch)


def test_pad_to_multiple_reflects_rather_than_zero_fills():
    batch = torch.tensor([[[[1.0, 2.0, 3.0]]]]).expand(1, 1, 3, 3).clone()
    out = pad_to_multiple(batch, 4)
    assert out[0, 0, 0, 3] == 2.0  # reflect: 1 2 3 | 2
    assert float(out.min()) >= 1.0
