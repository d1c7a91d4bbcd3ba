"""Patch placement on the tissue band (skinoct.layers._sampling)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.layers._sampling import band_crop, tissue_band


def _layered(n_z=200, n_x=120, surface=40, dej=90, sc=50):
    """Class-index mask: air above ``surface``, SC, epidermis, dermis from ``dej``."""
    rows = np.arange(n_z)[:, None] * np.ones((1, n_x), int)
    mask = np.zeros((n_z, n_x), np.uint8)
    mask[rows >= surface] = 1
    mask[rows >= sc] = 2
    mask[rows >= dej] = 3
    return mask


def test_tissue_band_reads_surface_and_dej_per_column():
    mask = _layered()
    mask[:, :10] = 0  # ten air-only columns
    band = tissue_band(mask, air_index=0, dermis_index=3)
    assert band.top[:10].tolist() == [-1] * 10
    assert band.bottom[:10].tolist() == [-1] * 10
    assert set(band.top[10:].tolist()) == {40}
    assert set(band.bottom[10:].tolist()) == {90}
    assert band.height().tolist() == [51] * 110


def test_tissue_band_without_dermis_ends_at_last_tissue_row():
    mask = _layered(dej=500)  # no dermis anywhere
    band = tissue_band(mask, air_index=0, dermis_index=3)
    assert set(band.bottom.tolist()) == {199}


def test_tissue_band_without_air_class_starts_at_row_zero():
    mask = _layered(surface=0, sc=0)  # partial label set: epidermis/dermis only
    band = tissue_band(mask - 2, air_index=None, dermis_index=1)
    assert set(band.top.tolist()) == {0}
    assert set(band.bottom.tolist()) == {90}


def test_band_crops_contain_the_dej_and_uniform_ones_often_do_not():
    n_z = 1000
    mask = _layered(n_z=n_z, surface=40, sc=50, dej=90)
    image = mask.astype(np.float32)
    band = tissue_band(mask, air_index=0, dermis_index=3)
    rng = np.random.default_rng(0)
    hits_band = hits_uniform = 0
    for _ in range(200):
        _, t = band_crop(image, mask, (128, 64), rng, band=band, mode="band")
        hits_band += bool((t == 3).any() and (t == 2).any())
        _, t = band_crop(image, mask, (128, 64), rng, band=band, mode="uniform")
        hits_uniform += bool((t == 3).any() and (t == 2).any())
    # The DEJ sits in the first 10 % of the depth: uniform crops rarely see it.
    assert hits_band == 200
    assert hits_uniform < 60


def test_band_crop_without_tissue_falls_back_to_uniform():
    mask = np.zeros((64, 64), np.uint8)
    band = tissue_band(mask, air_index=0, dermis_index=3)
    img, t = band_crop(mask.astype(float), mask, (32, 32), np.random.default_rng(1), band=band)
    assert img.shape == t.shape == (32, 32)


def test_band_crop_rejects_bad_mode_and_small_sections():
    mask = _layered()
    with pytest.raises(ValueError, match="mode"):
        band_crop(mask, mask, (32, 32), np.random.default_rng(0), band=None, mode="x")
    with pytest.raises(ValueError, match="smaller"):
        band_crop(mask, mask, (400, 32), np.random.default_rng(0), band=None)


@settings(max_examples=60, deadline=None)
@given(
    n_z=st.integers(40, 160),
    n_x=st.integers(20, 90),
    surface=st.integers(0, 30),
    thick=st.integers(1, 60),
    hz=st.integers(8, 40),
    hx=st.integers(4, 20),
    seed=st.integers(0, 2**16),
)
def test_band_crop_is_in_bounds_and_aligned(n_z, n_x, surface, thick, hz, hx, seed):
    mask = _layered(n_z=n_z, n_x=n_x, surface=surface, sc=surface, dej=surface + thick)
    image = np.arange(n_z * n_x, dtype=np.float64).reshape(n_z, n_x)
    band = tissue_band(mask, air_index=0, dermis_index=3)
    img, t = band_crop(image, mask, (hz, hx), np.random.default_rng(seed), band=band)
    assert img.shape == t.shape == (hz, hx)
    # image and mask are cut at the same place: the pixel index identifies it.
    z0, x0 = divmod(int(img[0, 0]), n_x)
    np.testing.assert_array_equal(t, mask[z0 : z0 + hz, x0 : x0 + hx])
