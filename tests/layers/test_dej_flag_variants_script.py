"""scripts/dej_flag_variants.py: the image-contrast and TTA statistics of the flag study."""


import numpy as np
import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def script():
    return import_script("dej_flag_variants")


def test_blurred_junction_scores_higher_than_a_sharp_one(script):
    """Step 0.2 -> 1.0 at row 30; columns 20-39 blurred (σ 8 px): lower gradient there."""
    from scipy.ndimage import gaussian_filter1d

    nz, nx = 60, 40
    step = np.where(np.arange(nz)[:, None] >= 30, 1.0, 0.2) * np.ones((1, nx))
    image = step.copy()
    image[:, 20:] = gaussian_filter1d(step[:, 20:], 8.0, axis=0)
    labels = np.where(np.arange(nz)[:, None] >= 30, 3, 2) * np.ones((1, nx), np.uint8)
    score = script._junction_gradient(image, labels, (1.0, 1.0))
    sharp, blurred = score[2:14], score[26:38]  # away from the lateral smoothing's reach
    assert np.all(blurred > sharp.max())
    labels[:, 0] = 3  # no epidermis in column 0: the DEJ is absent there
    assert np.isnan(script._junction_gradient(image, labels, (1.0, 1.0))[0])


def test_five_perturbed_views_and_only_the_flip_is_flagged(script):
    image = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    views = script._views(image, seed=1)
    assert [flipped for _, flipped in views] == [True, False, False, False, False]
    np.testing.assert_array_equal(views[0][0][:, ::-1], image)
    assert 0.0 <= views[1][0].min() and views[1][0].max() <= 1.0  # gamma on [0, 1]
    assert all(v.shape == image.shape for v, _ in views)


def test_combined_curves_weigh_parts_by_their_calibration_spread(script):
    """Two columns statistics, one 10x the other: each contributes equally after scaling."""
    rng = np.random.default_rng(2)
    items = []
    for group in ("cal", "cal", "clean", "dis"):
        a = rng.normal(size=50)
        items.append({"group": group, "labels": np.zeros((5, 50), np.uint8),
                      "spacing": (1.0, 1.0), "span": (10.0, 20.0), "maps": {},
                      "columns": {"a": a, "b": 10 * a}})  # fmt: skip
    one = script.combined_curves(items, (("a", 0.0),), 1.0)
    both = script.combined_curves(items, (("a", 0.0), ("b", 0.0)), 1.0)
    for x, y in zip(one, both, strict=True):
        np.testing.assert_allclose(y, 2 * x)
    r = script.evaluate(items, (("a", 0.0), ("b", 0.0)), 0.0, 1.0)
    assert set(r) == {"sensitivity", "false_flags", "auc"} and 0 <= r["auc"] <= 1
