"""Soft training targets across indeterminate (255) bands, and the loss built on them."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.io import INDETERMINATE
from skinoct.layers._targets import layer_loss, soft_targets

U = INDETERMINATE


def _column(values):
    return torch.tensor(values, dtype=torch.int64).view(1, 1, -1, 1)


def test_without_indeterminate_pixels_the_target_is_one_hot():
    t = torch.randint(0, 4, (2, 1, 8, 5))
    soft = soft_targets(t, 4)
    assert soft.shape == (2, 4, 8, 5)
    assert torch.equal(soft.argmax(1, keepdim=True), t)
    assert torch.equal(soft.sum(1), torch.ones(2, 8, 5))


def test_a_band_between_two_classes_blends_linearly_along_the_column():
    # epidermis (2) above, three indeterminate pixels, dermis (3) below
    soft = soft_targets(_column([0, 1, 2, U, U, U, 3]), 4)[0, :, :, 0]
    np.testing.assert_allclose(soft[3, 3:6].numpy(), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(soft[2, 3:6].numpy(), [0.75, 0.5, 0.25])
    np.testing.assert_allclose(soft[:, 0].numpy(), [1, 0, 0, 0])
    np.testing.assert_allclose(soft[:, 6].numpy(), [0, 0, 0, 1])


def test_runs_at_the_edges_take_the_one_class_next_to_them_and_empty_columns_are_uniform():
    t = torch.tensor([[U, U, 1, 3], [2, 3, U, U], [U, U, U, U]]).T.reshape(1, 1, 4, 3)
    soft = soft_targets(t, 4)[0]
    np.testing.assert_allclose(soft[:, :2, 0].T.numpy(), [[0, 1, 0, 0]] * 2)
    np.testing.assert_allclose(soft[:, 2:, 1].T.numpy(), [[0, 0, 0, 1]] * 2)
    np.testing.assert_allclose(soft[:, :, 2].numpy(), np.full((4, 4), 0.25))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0, 1, 2, 3, U]), min_size=1, max_size=24),
    st.integers(1, 3),
)
def test_targets_are_distributions_and_known_pixels_keep_their_class(values, width):
    t = torch.tensor(values, dtype=torch.int64).view(1, 1, -1, 1).repeat(1, 1, 1, width)
    soft = soft_targets(t, 4)
    assert torch.all(soft >= 0)
    torch.testing.assert_close(soft.sum(1), torch.ones(1, len(values), width))
    known = t[0, 0] != U
    onehot = torch.nn.functional.one_hot(t[0, 0].clamp(max=3), 4).permute(2, 0, 1).float()
    torch.testing.assert_close(soft[0][:, known], onehot[:, known])


def test_the_loss_on_hard_targets_equals_monai_dice_ce_with_class_indices():
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    logits = torch.randn(2, 4, 16, 16)
    target = torch.randint(0, 4, (2, 1, 16, 16))
    reference = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(logits, target)
    torch.testing.assert_close(layer_loss()(logits, target), reference)


def test_the_loss_is_lowest_for_a_prediction_that_matches_the_blend():
    target = _column([2, 2, U, U, U, 3, 3]).repeat(1, 1, 1, 4)
    soft = soft_targets(target, 4)
    matched = torch.log(soft.clamp(min=1e-6))  # softmax(log p) = p
    confident = torch.log(soft_targets(torch.where(target == U, 2, target), 4).clamp(min=1e-6))
    loss = layer_loss()
    assert float(loss(matched, target)) < float(loss(confident, target))


def test_a_loss_gradient_flows_through_indeterminate_pixels():
    logits = torch.zeros(1, 4, 5, 1, requires_grad=True)
    layer_loss()(logits, _column([2, U, U, U, 3])).backward()
    assert torch.all(logits.grad[0, :, 1:4].abs().sum(0) > 0)


@pytest.mark.parametrize("n_classes", [3, 4])
def test_class_count_follows_the_logits(n_classes):
    t = _column([0, U, n_classes - 1])
    assert soft_targets(t, n_classes).shape[1] == n_classes
