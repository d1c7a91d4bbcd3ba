import pytest
import torch

from skinoct.errors import ModelError
from skinoct.layers import NetworkSpec
from skinoct.layers._network import build_network, check_label_values, load_matching_weights


def test_default_spec_is_small_and_keeps_input_shape():
    net = build_network(NetworkSpec(), 4).eval()
    n_bytes = sum(p.numel() for p in net.parameters()) * 4
    assert n_bytes < 10 * 2**20  # the bundled model must stay below 10 MB
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 64, 96))
    assert out.shape == (1, 4, 64, 96)


def test_spec_round_trips_through_unet_args():
    spec = NetworkSpec(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.3)
    args = spec.unet_args(3)
    assert args["out_channels"] == 3 and args["spatial_dims"] == 2 and args["in_channels"] == 1
    assert NetworkSpec.from_unet_args(args) == spec
    assert spec.divisor == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": (4,), "strides": ()}, "channels"),
        ({"channels": (4, 8), "strides": (2, 2)}, "strides"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "layer"}, "norm"),
        ({"num_res_units": -1}, "num_res_units"),
    ],
)
def test_spec_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkSpec(**kwargs)


@pytest.mark.parametrize("levels", [2, 3, 5, 6, 8])
def test_with_levels_changes_the_depth_and_keeps_the_upper_levels(levels):
    spec = NetworkSpec(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.2)
    deep = spec.with_levels(levels)
    assert len(deep.channels) == levels and len(deep.strides) == levels - 1
    assert deep.channels[:3] == spec.channels[:levels]
    assert set(deep.channels[3:]) <= {16} and set(deep.strides) == {2}
    assert deep.divisor == 2 ** (levels - 1)
    assert (deep.num_res_units, deep.dropout, deep.norm) == (1, 0.2, "batch")
    assert deep.with_levels(3) == spec or levels < 3  # shrinking drops the deep widths
    # Every tensor of the shallower network's top level exists in the deeper one.
    small, big = build_network(spec, 4).state_dict(), build_network(deep, 4).state_dict()
    top = [k for k in small if k.startswith("model.0.")]
    assert top and all(k in big and big[k].shape == small[k].shape for k in top)


def test_a_deeper_network_sees_more_rows():
    """Receptive field by back-propagating one output pixel (an analytic property:
    each added stride-2 level widens it)."""

    def rows_seen(spec):
        torch.manual_seed(0)
        net = build_network(spec, 2).eval()
        x = torch.zeros(1, 1, 256, 16, requires_grad=True)
        net(x)[0, 0, 128, 8].backward()
        touched = torch.nonzero(x.grad[0, 0].abs().sum(1) > 0)
        return int(touched.max() - touched.min() + 1)

    spec = NetworkSpec(channels=(4, 4, 4), strides=(2, 2), num_res_units=0, dropout=0.0)
    assert rows_seen(spec.with_levels(5)) > rows_seen(spec) * 2


@pytest.mark.parametrize("levels", [1, 9])
def test_with_levels_refuses_impossible_depths(levels):
    with pytest.raises(ValueError, match="levels must be 2-8"):
        NetworkSpec().with_levels(levels)


def test_from_unet_args_rejects_garbage():
    with pytest.raises(ModelError, match="invalid UNet arguments"):
        NetworkSpec.from_unet_args({"strides": [2]})


@pytest.mark.parametrize("values", [[0], [0, 0, 1], [0, 4], ["air", "dermis"], None])
def test_unknown_class_sets_are_refused(values):
    with pytest.raises(ModelError, match="unknown class set"):
        check_label_values(values)


def test_class_set_is_sorted():
    assert check_label_values([3, 0, 2]) == (0, 2, 3)


def test_matching_weights_keep_features_and_reinitialise_the_head():
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)
    torch.manual_seed(0)
    four = build_network(spec, 4)
    three = build_network(spec, 3)
    before = {k: v.clone() for k, v in three.state_dict().items()}
    with pytest.warns(UserWarning, match="no match in the initial model"):
        skipped = load_matching_weights(three, four.state_dict())
    assert skipped  # the class-dependent output layers
    after = three.state_dict()
    for name, value in after.items():
        source = four.state_dict()[name]
        if name in skipped:
            assert torch.equal(value, before[name])
        else:
            assert torch.equal(value, source)


def _logits(net, x):
    net.eval()
    with torch.no_grad():
        return net(x)


def test_head_is_mapped_by_label_value_known_answer():
    # Without residual units the top layer is a bare transposed convolution, so each
    # output channel depends only on its own weights: a mapped head must give exactly
    # the initial model's logits of the shared classes.
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)
    torch.manual_seed(0)
    four = build_network(spec, 4)
    three = build_network(spec, 3)
    with pytest.warns(UserWarning, match=r"class set changed \(\[0, 1, 2, 3\] -> \[0, 2, 3\]\)"):
        skipped = load_matching_weights(
            three, four.state_dict(), spec=spec, source_labels=[0, 1, 2, 3],
            target_labels=[0, 2, 3],
        )  # fmt: skip
    assert skipped == []
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(_logits(three, x), _logits(four, x)[:, [0, 2, 3]])


def test_head_mapping_keeps_fresh_weights_for_a_new_class():
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)
    torch.manual_seed(1)
    three = build_network(spec, 3)
    four = build_network(spec, 4)
    before = {k: v.clone() for k, v in four.state_dict().items()}
    with pytest.warns(UserWarning, match=r"label\(s\) \[1\] start from fresh"):
        load_matching_weights(
            four, three.state_dict(), spec=spec, source_labels=[0, 2, 3],
            target_labels=[0, 1, 2, 3],
        )  # fmt: skip
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(_logits(four, x)[:, [0, 2, 3]], _logits(three, x))
    head = four.state_dict()["model.2.conv.weight"]  # (in, classes, k, k)
    torch.testing.assert_close(head[:, 1], before["model.2.conv.weight"][:, 1])
    torch.testing.assert_close(head[:, [0, 2, 3]], three.state_dict()["model.2.conv.weight"])


def test_head_mapping_with_residual_units_indexes_both_class_axes():
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=2)
    torch.manual_seed(2)
    four = build_network(spec, 4)
    three = build_network(spec, 3)
    with pytest.warns(UserWarning, match="class set changed"):
        load_matching_weights(
            three, four.state_dict(), spec=spec, source_labels=[0, 1, 2, 3],
            target_labels=[0, 2, 3],
        )  # fmt: skip
    src, out = four.state_dict(), three.state_dict()
    keep = torch.tensor([0, 2, 3])
    square = [k for k, v in out.items() if v.dim() == 4 and v.shape[:2] == (3, 3)]
    assert square  # the residual unit's class-to-class convolution
    for name in square:
        torch.testing.assert_close(out[name], src[name][keep][:, keep])


def test_same_class_count_with_other_labels_is_not_loaded_by_shape():
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)
    torch.manual_seed(3)
    source = build_network(spec, 3)  # labels 0, 1, 3
    target = build_network(spec, 3)  # labels 0, 2, 3
    before = target.state_dict()["model.2.conv.weight"].clone()
    with pytest.warns(UserWarning, match=r"label\(s\) \[2\] start from fresh"):
        load_matching_weights(
            target, source.state_dict(), spec=spec, source_labels=[0, 1, 3],
            target_labels=[0, 2, 3],
        )  # fmt: skip
    head = target.state_dict()["model.2.conv.weight"]
    ref = source.state_dict()["model.2.conv.weight"]
    torch.testing.assert_close(head[:, [0, 2]], ref[:, [0, 2]])  # air, dermis
    torch.testing.assert_close(head[:, 1], before[:, 1])  # epidermis: not SC's weights


def test_matching_weights_refuse_a_foreign_network():
    net = build_network(NetworkSpec(channels=(4, 8), strides=(2,)), 4)
    with pytest.raises(ModelError, match="do not fit"):
        load_matching_weights(net, {"other.weight": torch.zeros(3)})


def test_a_network_of_other_widths_does_not_fit_through_its_counters_alone():
    """BatchNorm counters, PReLU slopes and the head bias match any network by name and shape;
    an initial model whose every weight has other widths is still refused."""
    spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)
    wide = build_network(NetworkSpec(channels=(6, 12), strides=(2,), num_res_units=0), 4)
    net = build_network(spec, 4)
    own = net.state_dict()
    shared = [k for k, v in wide.state_dict().items() if k in own and own[k].shape == v.shape]
    assert shared  # the counters, slopes and head bias
    with pytest.raises(ModelError, match="do not fit"):
        load_matching_weights(net, wide.state_dict())
