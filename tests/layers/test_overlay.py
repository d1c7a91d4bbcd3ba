import numpy as np
import pytest
from PIL import Image

from skinoct.layers._overlay import (
    BOUNDARY_COLORS,
    boundary_overlay,
    entropy_overlay,
    write_rgb_png,
)


def test_flat_boundaries_are_drawn_at_their_depth_in_the_seed_colours():
    image = np.zeros((40, 10), np.float32)
    bounds = {
        "surface": np.full(10, 5.0),  # µm; dz = 0.5 -> row 10
        "sc_junction": np.full(10, 8.0),  # row 16
        "dej": np.r_[np.full(5, 15.0), np.full(5, np.nan)],  # row 30, absent on the right
    }
    rgb = boundary_overlay(image, bounds, (0.5, 1.0), width_px=1)
    assert rgb.shape == (40, 10, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[10, 3]) == BOUNDARY_COLORS["surface"]
    assert tuple(rgb[16, 3]) == BOUNDARY_COLORS["sc_junction"]
    assert tuple(rgb[30, 2]) == BOUNDARY_COLORS["dej"]
    assert tuple(rgb[30, 7]) == (0, 0, 0)  # NaN: nothing drawn
    assert tuple(rgb[20, 3]) == (0, 0, 0)
    # Seed colours: blue surface, red SC junction, green DEJ.
    assert np.argmax(BOUNDARY_COLORS["surface"]) == 2
    assert np.argmax(BOUNDARY_COLORS["sc_junction"]) == 0
    assert np.argmax(BOUNDARY_COLORS["dej"]) == 1


def test_steep_boundaries_are_joined():
    bounds = {"dej": np.array([2.0, 12.0])}
    rgb = boundary_overlay(np.zeros((16, 2)), bounds, (1.0, 1.0), width_px=1)
    column = np.all(rgb[:, 0] == BOUNDARY_COLORS["dej"], axis=1)
    assert column[2:13].all()  # the jump from row 2 to row 12 is a continuous line


def test_boundary_shape_is_checked():
    with pytest.raises(ValueError, match="shape"):
        boundary_overlay(np.zeros((4, 5)), {"dej": np.zeros(4)}, (1.0, 1.0))


def test_entropy_goes_violet_to_yellow():
    image = np.full((2, 2), 0.5, np.float32)
    entropy = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    rgb = entropy_overlay(image, entropy, alpha=1.0).astype(int)
    low, high = rgb[0, 0], rgb[1, 0]
    assert low[2] > low[1] and low[0] > low[1]  # violet: blue and red over green
    assert high[0] > high[2] and high[1] > high[2]  # yellow: red and green over blue


def test_png_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    path = write_rgb_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    with pytest.raises(ValueError, match="RGB uint8"):
        write_rgb_png(tmp_path / "b.png", rgb[..., 0])
