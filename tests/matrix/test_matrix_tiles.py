"""Tile geometry: µm sizes, alternation, DEJ-relative depth, channel order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.io import Image
from skinoct.matrix import (
    enface_tiles,
    extract_tiles,
    profile_tiles,
    read_dej,
    tile_positions,
)


def depth_volume(shape, spacing, dej):
    """Voxel value = depth below the DEJ in µm (linear in z, so interpolation is exact)."""
    nz = shape[0]
    z = np.arange(nz, dtype=np.float64)[:, None, None] * spacing[0]
    return Image((z - dej[None]).astype(np.float32), spacing, "zyx")


def test_tile_positions_centred_and_overlapping():
    assert tile_positions(1224, 400, 3) == [12, 412, 812]  # (1224 − 1200) / 2 = 12
    assert tile_positions(1224, 400, 2) == [212, 612]
    assert tile_positions(600, 400, 3) == [0, 100, 200]  # spread, overlapping
    with pytest.raises(InputError, match="does not fit"):
        tile_positions(300, 400, 1)


def test_alternating_three_and_two_tiles_as_the_paper():
    dej = np.full((50, 130), 5.0)
    image = depth_volume((40, 50, 130), (1.0, 1.0, 1.0), dej)
    tiles, index = extract_tiles(
        image, dej, tile_size_um=40, step_um=5, depth_stop_um=30, out_size=16
    )
    per_depth = index.groupby("depth_um").size().to_list()
    assert index["depth_um"].unique().tolist() == [0, 5, 10, 15, 20, 25]  # [start, stop)
    assert per_depth == [3, 2, 3, 2, 3, 2]
    assert tiles.shape == (15, 3, 16, 16) and tiles.dtype == np.uint8
    assert index["tile_id"].is_unique


def test_tile_size_in_um_with_anisotropic_spacing():
    # dy = 2 µm, dx = 0.5 µm: a 40 µm tile is 20 px tall and 80 px wide.
    ny, nx = 30, 300
    x_um = np.arange(nx) * 0.5
    data = np.broadcast_to(x_um[None, None, :], (12, ny, nx)).astype(np.float32)
    image = Image(np.ascontiguousarray(data), (1.0, 2.0, 0.5), "zyx")
    tiles, index = extract_tiles(
        image, 2.0, tile_size_um=40, depths_um=[0.0], out_size=20, dtype="float32"
    )
    assert (index["height_px"] == 20).all() and (index["width_px"] == 80).all()
    assert (index["height_px"] * 2.0 == 40).all() and (index["width_px"] * 0.5 == 40).all()
    # Each tile spans 40 µm of x: its mean value is the x of its centre.
    for tile, x0 in zip(tiles, index["x_um"], strict=True):
        assert tile.mean() == pytest.approx(x0 + 40 / 2 - 0.25, abs=0.3)
        assert tile[1, :, -1].mean() - tile[1, :, 0].mean() == pytest.approx(40, abs=3)


def test_depth_follows_a_tilted_dej_and_channels_are_z_minus_plus_1():
    ny, nx = 40, 200
    dej = 30.0 + 0.1 * np.arange(nx)[None, :] + 0.05 * np.arange(ny)[:, None]  # tilted 20 µm
    image = depth_volume((240, ny, nx), (0.5, 1.0, 1.0), dej)  # dz = 0.5 µm, 120 µm deep
    tiles, index = extract_tiles(
        image,
        dej,
        tile_size_um=40,
        step_um=7,
        depth_stop_um=50,
        out_size=40,
        dtype="float32",
        z_sampling="linear",
    )
    depth = index["depth_um"].to_numpy()[:, None, None]
    # Everywhere in every tile, R = depth − 1 µm, G = depth, B = depth + 1 µm below the local DEJ.
    np.testing.assert_allclose(
        tiles[:, 0], np.broadcast_to(depth - 1, tiles[:, 0].shape), atol=1e-3
    )
    np.testing.assert_allclose(tiles[:, 1], np.broadcast_to(depth, tiles[:, 1].shape), atol=1e-3)
    np.testing.assert_allclose(
        tiles[:, 2], np.broadcast_to(depth + 1, tiles[:, 2].shape), atol=1e-3
    )


def test_constant_dej_equals_flat_surface():
    rng = np.random.default_rng(0)
    image = Image(rng.random((30, 45, 45)).astype(np.float32), (1, 1, 1), "zyx")
    a, _ = extract_tiles(image, 7.0, tile_size_um=40, depths_um=[3.0], out_size=40, dtype="float32")
    b, _ = extract_tiles(
        image,
        np.full((45, 45), 7.0),
        tile_size_um=40,
        depths_um=[3.0],
        out_size=40,
        dtype="float32",
    )
    np.testing.assert_array_equal(a, b)
    # Integer depths on a 1 µm grid sample the voxels themselves (no interpolation).
    np.testing.assert_allclose(a[0, 1], image.data[10, 2:42, 2:42], rtol=1e-6)


def test_profile_tiles_three_per_layer_and_same_as_extract():
    dej = np.full((50, 130), 4.0)
    image = depth_volume((90, 50, 130), (1.0, 1.0, 1.0), dej)
    tiles, index = profile_tiles(image, dej, tile_size_um=40, out_size=16, dtype="float32")
    assert len(index) == 70 * 3 and index["depth_um"].nunique() == 70
    assert index.groupby("depth_um").size().eq(3).all()
    again, _ = extract_tiles(
        image,
        dej,
        depths_um=[33.0],
        layout="row",
        n_tiles=3,
        tile_size_um=40,
        out_size=16,
        dtype="float32",
    )
    np.testing.assert_array_equal(tiles[index["depth_um"].to_numpy() == 33.0], again)


def test_tiles_outside_the_volume_are_dropped_with_a_warning():
    dej = np.full((45, 45), 10.0)
    dej[:, :20] = np.nan  # DEJ unknown on the left
    image = depth_volume((30, 45, 45), (1, 1, 1), np.nan_to_num(dej))
    with pytest.warns(UserWarning, match="left out"):
        tiles, index = extract_tiles(
            image, dej, tile_size_um=20, layout="grid", depths_um=[0.0, 18.0], out_size=8
        )
    # grid: 2 × 2 tiles per depth; the two left ones (NaN DEJ) drop at both depths, and
    # at 18 µm the slice below (z = 29 µm) is the last one: still inside.
    assert index.attrs["dropped"] == 4 and len(index) == 4 and (index["col"] == 1).all()
    with pytest.warns(UserWarning):
        _, deep = extract_tiles(image, 10.0, tile_size_um=20, depths_um=[25.0], out_size=8)
    assert len(deep) == 0


def test_uint8_scaling_is_shared_by_the_call():
    dej = np.full((45, 45), 5.0)
    image = depth_volume((60, 45, 45), (1, 1, 1), dej)
    tiles, index = extract_tiles(image, dej, tile_size_um=40, depths_um=[0, 20, 40], out_size=8)
    assert tiles.dtype == np.uint8
    lo, hi = index.attrs["intensity_range"]
    means = tiles[:, 1].mean(axis=(1, 2))
    assert means[0] < means[1] < means[2]  # deeper = brighter here; one scale for all
    fixed, _ = extract_tiles(
        image, dej, tile_size_um=40, depths_um=[20], out_size=8, intensity_range=(0, 40)
    )
    assert fixed[0, 1].mean() == pytest.approx(255 * 20 / 40, abs=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "spiral"}, "layout must be one of"),
        ({"tile_size_um": 500}, "smaller than a 500 µm tile"),
        ({"step_um": 0}, "step_um must be positive"),
        ({"depth_stop_um": -1}, "must be larger than"),
        ({"dtype": "int16"}, "dtype must be"),
    ],
)
def test_bad_options(kwargs, match):
    image = Image(np.zeros((10, 45, 45), np.float32), (1, 1, 1), "zyx")
    with pytest.raises(InputError, match=match):
        extract_tiles(image, 2.0, **{"tile_size_um": 40, **kwargs})


def test_bad_dej_and_volume():
    image = Image(np.zeros((10, 45, 45), np.float32), (1, 1, 1), "zyx")
    with pytest.raises(InputError, match="DEJ surface has shape"):
        extract_tiles(image, np.zeros((4, 4)), tile_size_um=40)
    with pytest.raises(InputError, match="finite"):
        extract_tiles(image, np.nan, tile_size_um=40)
    with pytest.raises(InputError, match="'zyx' volume"):
        extract_tiles(Image(np.zeros((45, 45)), (1, 1), "yx"), 2.0, tile_size_um=40)


def test_enface_tiles_from_a_three_slice_stack_and_a_single_slice():
    rng = np.random.default_rng(1)
    stack = Image(rng.random((3, 90, 90)).astype(np.float32), (1, 0.5, 0.5), "zyx")
    tiles, index = enface_tiles(stack, tile_size_um=20, out_size=40, dtype="float32")
    assert len(index) == 4  # 45 × 45 µm field: 2 × 2 tiles of 20 µm
    np.testing.assert_allclose(tiles[0], stack.data[:, 5:45, 5:45], rtol=1e-5)  # centred
    single = Image(stack.data[1], (0.5, 0.5), "yx")
    with pytest.warns(UserWarning, match="three channels"):
        tiles1, _ = enface_tiles(single, tile_size_um=20, out_size=40, dtype="float32")
    np.testing.assert_array_equal(tiles1[:, 0], tiles1[:, 2])


def test_read_dej(tmp_path):
    assert read_dej("62.5") == 62.5
    surface = np.arange(12.0).reshape(3, 4)
    np.savez(tmp_path / "gt.npz", dej_um=surface, depths_um=np.arange(3))
    np.testing.assert_array_equal(read_dej(tmp_path / "gt.npz"), surface)
    np.save(tmp_path / "d.npy", surface)
    np.testing.assert_array_equal(read_dej(str(tmp_path / "d.npy")), surface)
    with pytest.raises(InputError, match="neither a number"):
        read_dej(tmp_path / "nope.npy")
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(InputError, match="2-D"):
        read_dej(tmp_path / "bad.npy")


def test_nearest_slice_sampling_keeps_whole_slices():
    ny, nx = 45, 45
    dej = 10.3 + 0.02 * np.arange(nx)[None, :] + np.zeros((ny, 1))  # fractional, 10.3–11.2 µm
    rng = np.random.default_rng(2)
    data = rng.random((40, ny, nx)).astype(np.float32)
    image = Image(data, (1.0, 1.0, 1.0), "zyx")
    tiles, index = extract_tiles(
        image,
        dej,
        tile_size_um=40,
        depths_um=[5.0],
        out_size=40,
        dtype="float32",
        z_sampling="nearest",
    )
    assert index.attrs["z_sampling"] == "nearest"
    z = np.floor(dej + 5.0 + 0.5).astype(int)[2:42, 2:42]  # centred tile: pixels 2…41
    expected = np.take_along_axis(data[:, 2:42, 2:42], z[None], axis=0)[0]
    np.testing.assert_array_equal(tiles[0, 1], expected)  # voxel values, no blending
    linear, _ = extract_tiles(
        image,
        dej,
        tile_size_um=40,
        depths_um=[5.0],
        out_size=40,
        dtype="float32",
        z_sampling="linear",
    )
    assert not np.allclose(linear[0, 1], expected)
    with pytest.raises(InputError, match="z_sampling"):
        extract_tiles(image, dej, tile_size_um=40, z_sampling="cubic")


@pytest.mark.parametrize(("dz", "expected"), [(1.0, "nearest"), (0.5, "nearest"), (0.75, "linear")])
def test_auto_z_sampling_uses_whole_slices_when_they_fit(dz, expected):
    ny = nx = 45
    dej = 10.3 + 0.037 * np.arange(nx)[None, :] + np.zeros((ny, 1))
    nz = int(60 / dz)
    z_um = (np.arange(nz, dtype=np.float32) * dz)[:, None, None]
    image = Image(np.broadcast_to(z_um, (nz, ny, nx)).copy(), (dz, 1.0, 1.0), "zyx")
    tiles, index = extract_tiles(
        image, dej, tile_size_um=40, depths_um=[5.0, 12.0], out_size=40, dtype="float32"
    )
    assert index.attrs["z_sampling"] == expected
    target = (dej + index["depth_um"].to_numpy()[:, None, None])[:, 2:42, 2:42]
    # channels are the voxel depths sampled: exactly 1 µm apart (z−1, z, z+1) …
    np.testing.assert_allclose(tiles[:, 1] - tiles[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(tiles[:, 2] - tiles[:, 1], 1.0, atol=1e-5)
    # … and the centre slice lies within half a slice of DEJ + depth (exact if linear)
    tolerance = dz / 2 + 1e-5 if expected == "nearest" else 1e-4
    assert np.abs(tiles[:, 1] - target).max() <= tolerance


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    dz=st.sampled_from([0.5, 1.0, 1.7]),
    mode=st.sampled_from(["linear", "nearest"]),
)
def test_planes_read_in_depth_order_equal_planes_read_alone(seed, dz, mode):
    """Reusing the last plane's deeper slices (1 µm steps) gives the same samples."""
    from skinoct.matrix._tiles import _PlaneSampler

    rng = np.random.default_rng(seed)
    data = rng.random((30, 9, 11)).astype(np.float32)
    dej = rng.uniform(-3, 30 * dz, (9, 11))
    dej[rng.random(dej.shape) < 0.1] = np.nan
    box = (0, 9, 0, 11)
    offsets = [-1.0, 0.0, 1.0, 2.0, 3.0, 2.5, 7.0, 8.0]
    ordered = _PlaneSampler(data, dz, dej, box, mode=mode)
    for offset in offsets:
        alone = _PlaneSampler(data, dz, dej, box, mode=mode)(offset)
        np.testing.assert_array_equal(ordered(offset), alone)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), dz=st.sampled_from([0.5, 1.0, 1.7]), c_order=st.booleans())
def test_nearest_planes_are_the_whole_slices_at_the_rounded_depth(seed, dz, c_order):
    """Nearest sampling gathers slice floor(z + ½) as stored (the last one included),
    NaN outside the volume or where the DEJ is unknown; no interpolation arithmetic."""
    from skinoct.matrix._tiles import _PlaneSampler

    rng = np.random.default_rng(seed)
    nz = 12
    data = rng.normal(size=(nz, 7, 8)).astype(np.float32)
    data = data if c_order else np.asfortranarray(data)
    dej = rng.uniform(-2 * dz, (nz + 1) * dz, (7, 8))
    dej[rng.random(dej.shape) < 0.1] = np.nan
    dej[0, 0] = (nz - 1) * dz  # exactly on the last slice
    sampler = _PlaneSampler(data, dz, dej, (0, 7, 0, 8), mode="nearest")
    for offset in (0.0, 1.0, 0.4):
        plane = sampler(offset)
        z = np.floor((dej + offset) / dz + 0.5)
        inside = np.isfinite(z) & (z >= 0) & (z <= nz - 1)
        assert np.isnan(plane[~inside]).all()
        yy, xx = np.nonzero(inside)
        np.testing.assert_array_equal(plane[inside], data[z[inside].astype(int), yy, xx])
    assert sampler(0.0)[0, 0] == data[nz - 1, 0, 0]
