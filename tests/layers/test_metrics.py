import math

import numpy as np
import pytest

from skinoct.layers import dice_per_layer, mean_dice, summarize_dice


def test_dice_per_layer_analytic():
    truth = np.array([[0, 1, 1, 2, 2, 2, 3, 3]])
    pred = np.array([[0, 1, 2, 2, 2, 3, 3, 3]])
    dice = dice_per_layer(pred, truth)
    # SC: 2*1/(1+2); epidermis: 2*2/(3+3); dermis: 2*2/(3+2)
    assert dice["stratum_corneum"] == pytest.approx(2 / 3)
    assert dice["epidermis"] == pytest.approx(2 / 3)
    assert dice["dermis"] == pytest.approx(4 / 5)


def test_absent_layer_gives_nan_not_a_score():
    truth = np.array([[0, 2, 3]])
    dice = dice_per_layer(truth, truth)
    assert math.isnan(dice["stratum_corneum"])
    assert dice["epidermis"] == 1.0 and dice["dermis"] == 1.0
    assert mean_dice(dice) == 1.0


def test_dice_needs_equal_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        dice_per_layer(np.zeros((2, 2)), np.zeros((2, 3)))


def test_summarize_dice_counts_valid_values():
    rows = [
        {"epidermis": 0.8, "dermis": 1.0},
        {"epidermis": 0.6, "dermis": float("nan")},
    ]
    s = summarize_dice(rows)
    assert s["epidermis"] == pytest.approx({"mean": 0.7, "std": np.std([0.8, 0.6], ddof=1), "n": 2})
    assert s["dermis"]["n"] == 1 and s["dermis"]["mean"] == 1.0
    # Per row means: 0.9 and 0.6.
    assert s["mean_dice"]["mean"] == pytest.approx(0.75) and s["mean_dice"]["n"] == 2
