"""The exported graph computes what the network computes (skinoct.models._graph)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.models._graph import export_graph


@settings(max_examples=30, deadline=None)
@given(
    slope=st.floats(-3.0, 3.0, allow_nan=False, width=32),
    seed=st.integers(0, 2**16),
)
def test_one_slope_prelu_becomes_an_identical_leaky_relu(slope, seed):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.PReLU(init=slope))
    x = torch.randn(2, 1, 9, 11, generator=torch.Generator().manual_seed(seed))
    graph = export_graph(net)
    assert isinstance(graph[1], torch.nn.LeakyReLU)
    with torch.inference_mode():
        torch.testing.assert_close(graph(x), net(x), rtol=0, atol=0)  # bit for bit


def test_the_network_itself_is_left_as_it_was():
    net = torch.nn.Sequential(torch.nn.PReLU(), torch.nn.Dropout(0.5)).train()
    graph = export_graph(net)
    assert isinstance(net[0], torch.nn.PReLU) and net.training  # untouched, still training
    assert not graph.training and graph[0] is not net[0]


def test_prelu_with_a_slope_per_channel_is_kept():
    # LeakyReLU has one slope: a per-channel PReLU has no exact equivalent there
    net = torch.nn.Sequential(torch.nn.PReLU(num_parameters=3))
    assert isinstance(export_graph(net)[0], torch.nn.PReLU)


def test_a_monai_unet_in_export_form_gives_the_same_logits():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(2, 1, 4, channels=(4, 8, 16), strides=(2, 2), num_res_units=2, norm="batch")
    net.eval()
    graph = export_graph(net)
    kinds = {type(m).__name__ for m in graph.modules()}
    assert "PReLU" not in kinds and "LeakyReLU" in kinds
    x = torch.randn(2, 1, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(graph(x), net(x), rtol=0, atol=0)
