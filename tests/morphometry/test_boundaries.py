"""extract_boundaries: clean-up of real-world masks, coverage, sub-pixel boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.morphometry import (
    BOUNDARY_NAMES,
    default_smoothing_um,
    extract_boundaries,
    measure_section,
)

SPACING = (1.0, 1.0)


@pytest.fixture
def clean(render):
    """Flat layers: surface 10.3, SC junction 20.3, DEJ 50.3 µm; 80 columns at 1 µm."""
    return render(
        (100, 80),
        SPACING,
        lambda x: np.full_like(x, 10.3),
        lambda x: np.full_like(x, 20.3),
        lambda x: np.full_like(x, 50.3),
    )


def test_api_shape_keys_and_positions(clean):
    b = extract_boundaries(clean, SPACING)
    assert tuple(b) == BOUNDARY_NAMES == ("surface", "sc_junction", "dej")
    assert b.shape == (80,)
    np.testing.assert_array_equal(b["dej"], b.dej)
    np.testing.assert_allclose(b.x_um, np.arange(80) * 1.0)
    # rows sample depth i·dz; the boundary read back is within dz/2 of the truth
    for name, truth in zip(BOUNDARY_NAMES, (10.3, 20.3, 50.3), strict=True):
        np.testing.assert_allclose(b[name], truth, atol=0.5)
        np.testing.assert_allclose(b.raw[name], truth, atol=0.5)
    assert b.coverage == {"surface": 1.0, "sc_junction": 1.0, "dej": 1.0}
    assert b.smoothing_um == default_smoothing_um(SPACING) == 2.0
    with pytest.raises(KeyError):
        b["epidermis"]


def test_holes_and_islands_do_not_move_boundaries(clean):
    reference = extract_boundaries(clean, SPACING)
    dirty = clean.copy()
    dirty[60:66, 10:20] = 0  # an air hole in the dermis
    dirty[70:74, 30:36] = 2  # epidermis blob inside the dermis
    dirty[30:34, 40:45] = 0  # a bubble inside the epidermis
    dirty[24:27, 50:55] = 1  # SC-labelled speck inside the epidermis
    dirty[2:5, 20:30] = 1  # debris floating in the gel above the skin
    dirty[35:38, 60:64] = 3  # a dermis island in the epidermis
    dirty[13:16, 5:9] = 2  # an epidermis island inside the stratum corneum
    b = extract_boundaries(dirty, SPACING)
    for name in BOUNDARY_NAMES:
        np.testing.assert_allclose(b[name], reference[name], atol=1e-9, err_msg=name)


def test_missing_layer_columns_are_nan_with_coverage(clean):
    mask = clean.copy()
    no_sc = slice(20, 30)
    mask[:21, no_sc] = np.where(mask[:21, no_sc] == 1, 2, mask[:21, no_sc])  # SC absent
    no_dermis = slice(60, 80)
    mask[50:, no_dermis] = 2  # dermis not reached in these columns
    m = measure_section(mask, SPACING)
    b = m.boundaries
    assert np.isnan(b.sc_junction[no_sc]).all()
    assert np.isnan(b.dej[no_dermis]).all()
    assert np.isfinite(b.surface).all()
    assert m.coverage == {"surface": 1.0, "sc_junction": 70 / 80, "dej": 60 / 80}
    # thickness is summarised over the valid columns only
    sc = m.thickness["stratum_corneum_thickness_um"]
    assert np.isnan(sc[no_sc]).all() and np.isfinite(sc[:20]).all()
    assert m.stratum_corneum_thickness_um["mean"] == pytest.approx(10.0, abs=1e-6)
    epi = m.thickness["epidermis_thickness_um"]
    assert np.isfinite(epi[no_sc]).all() and np.isnan(epi[no_dermis]).all()


def test_mask_cut_at_the_image_top_and_side_band(clean):
    mask = clean.copy()
    mask[:11, :8] = 1  # skin reaches the top edge: the surface is not seen there
    mask[:, 40:45] = 0  # a vertical shadow band with no labels
    b = extract_boundaries(mask, SPACING)
    assert np.isnan(b.surface[:8]).all()
    assert np.isfinite(b.sc_junction[:8]).all()  # SC above it is still seen
    assert np.isnan(b.dej[40:45]).all()
    # both halves beside the shadow are kept (neither is an island of the other)
    np.testing.assert_allclose(b.dej[:40], 50.3, atol=0.5)
    np.testing.assert_allclose(b.dej[45:], 50.3, atol=0.5)
    assert b.coverage["dej"] == pytest.approx(75 / 80)


def test_no_smoothing_gives_label_edges(clean):
    b = extract_boundaries(clean, SPACING, smoothing_um=0)
    # the first dermis row is 51 (51 ≥ 50.3): the boundary lies half way, at 50.5
    np.testing.assert_array_equal(b.dej, 50.5)
    np.testing.assert_array_equal(b.raw["dej"], b.dej)


def test_probabilities_give_subpixel_boundaries(clean):
    """Soft probabilities whose 0.5 crossing sits at a known sub-pixel depth."""
    nz, nx = clean.shape
    z = np.arange(nz, dtype=float)[:, None] * np.ones(nx)
    truth = {"surface": 10.3, "sc_junction": 20.3, "dej": 50.7}
    # P(class ≥ c) ramps linearly across ±1.5 µm around each boundary
    below = [np.clip((z - truth[n]) / 3.0 + 0.5, 0, 1) for n in BOUNDARY_NAMES]
    probs = np.stack([1 - below[0], below[0] - below[1], below[1] - below[2], below[2]])
    labels = probs.argmax(axis=0).astype(np.uint8)
    b = extract_boundaries(labels, SPACING, probabilities=probs, smoothing_um=0)
    for name in BOUNDARY_NAMES:
        np.testing.assert_allclose(b[name], truth[name], atol=1e-9)
    # one-hot probabilities reproduce the label boundaries
    onehot = np.stack([(clean == c).astype(float) for c in range(4)])
    a = extract_boundaries(clean, SPACING, probabilities=onehot, smoothing_um=0)
    b = extract_boundaries(clean, SPACING, smoothing_um=0)
    for name in BOUNDARY_NAMES:
        np.testing.assert_allclose(a[name], b[name])


def test_smoothing_keeps_a_tilted_line_to_the_edges(render):
    mask = render(
        (200, 120),
        SPACING,
        lambda x: 10 + 0.4 * x,
        lambda x: 20 + 0.4 * x,
        lambda x: 60 + 0.4 * x,
    )
    b = extract_boundaries(mask, SPACING, smoothing_um=4.0)
    truth = 60 + 0.4 * b.x_um
    # the raw staircase is within dz/2 of the line; smoothing brings it closer, edges too
    assert np.abs(b.raw["dej"] - truth).max() <= 0.5 + 1e-9
    assert np.abs(b.dej - truth).max() < 0.35
    assert np.abs(b.dej - truth)[10:-10].max() < 0.15
    # and its local slope (what the normal thickness uses) stays that of the line
    slope = np.gradient(b.dej, 1.0)
    np.testing.assert_allclose(slope, 0.4, atol=0.06)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probabilities": np.zeros((3, 10, 10))}, "probabilities must have shape"),
        ({"probabilities": np.full((4, 10, 10), 2.0)}, r"in \[0, 1\]"),
        ({"smoothing_um": -1.0}, "smoothing_um"),
    ],
)
def test_bad_options(kwargs, match):
    mask = np.zeros((10, 10), np.uint8)
    mask[3:] = 3
    with pytest.raises(InputError, match=match):
        extract_boundaries(mask, SPACING, **kwargs)


def test_bad_masks():
    with pytest.raises(InputError, match="2-D"):
        extract_boundaries(np.ones((3,), np.uint8), (1.0,))
    with pytest.raises(InputError, match="no skin"):
        extract_boundaries(np.zeros((5, 5), np.uint8), SPACING)
    with pytest.raises(InputError, match="outside the skinoct labels"):
        extract_boundaries(np.full((5, 5), 4), SPACING)
    with pytest.raises(InputError, match="spacing"):
        extract_boundaries(np.ones((5, 5), np.uint8), (1.0, -1.0))


def test_volume_boundaries_with_probabilities(render):
    spacing = (0.5, 2.0, 1.0)

    def flat(depth):
        return lambda y, x: np.full(np.broadcast(y, x).shape, depth)

    labels = render((60, 6, 9), spacing, flat(4.2), flat(9.2), flat(20.2))
    onehot = np.stack([(labels == c).astype(np.float32) for c in range(4)])
    b = extract_boundaries(labels, spacing, probabilities=onehot)
    assert b.shape == (6, 9)
    assert b.lateral_spacing_um == (2.0, 1.0)
    np.testing.assert_allclose(b.y_um, np.arange(6) * 2.0)
    for name, truth in zip(BOUNDARY_NAMES, (4.2, 9.2, 20.2), strict=True):
        np.testing.assert_allclose(b[name], truth, atol=spacing[0] / 2)
    section = extract_boundaries(labels[:, 0], (0.5, 1.0))
    with pytest.raises(AttributeError, match="volume"):
        _ = section.y_um


def _labelled_components(region):
    """Reference: the general clean-up path, whatever the region looks like."""
    from scipy import ndimage

    from skinoct.morphometry import _boundaries

    structure = ndimage.generate_binary_structure(region.ndim, region.ndim)
    n = ndimage.label(region, structure=structure)[1]
    saved = _boundaries._single_column_component
    try:
        _boundaries._single_column_component = lambda r: False
        return n, _boundaries._keep_main_components(region)
    finally:
        _boundaries._single_column_component = saved


@settings(max_examples=200, deadline=None)
@given(
    tops=st.lists(st.integers(0, 7), min_size=1, max_size=12),
    ordered=st.booleans(),
    holes=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 11)), max_size=3),
    three_d=st.booleans(),
)
def test_one_piece_shortcut_is_exact(tops, ordered, holes, three_d):
    """The shortcut for ordered masks gives what labelling the region gives."""
    from skinoct.morphometry._boundaries import _keep_main_components, _single_column_component

    nz = 6
    region = np.arange(nz)[:, None] >= np.array(tops)[None, :]  # columns run to the bottom
    if not ordered:
        for z, x in holes:
            if x < region.shape[1]:
                region[z, x] = not region[z, x]
    if three_d:
        region = np.stack([region, np.roll(region, 1, axis=1)], axis=1)  # (z, y, x)
    n, reference = _labelled_components(region)
    if _single_column_component(region):
        assert n <= 1  # the shortcut only claims what labelling confirms
    np.testing.assert_array_equal(_keep_main_components(region), reference)
