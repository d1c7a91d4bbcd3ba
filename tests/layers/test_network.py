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
    with pytest.warns(UserWarning, match="did not fit"):
        skipped = load_matching_weights(three, four.state_dict())
    assert skipped  # the class-dependent output layers
    after = three.state_dict()
    for name, value in after.items():
        source = four.state_dict()[name]
        if name in skipped:
            assert torch.equal(value, before[name])
        else:
            assert torch.equal(value, source)


def test_matching_weights_refuse_a_foreign_network():
    net = build_network(NetworkSpec(channels=(4, 8), strides=(2,)), 4)
    with pytest.raises(ModelError, match="do not fit"):
        load_matching_weights(net, {"other.weight": torch.zeros(3)})
