"""MobileNetV3-Small + head, the Keras layer mapping, frozen layers per phase, weights."""

import datetime

import numpy as np
import pytest
import torch
from torchvision.models import mobilenet_v3_small

from skinoct.errors import InputError, ModelError
from skinoct.matrix import MatrixNet, _network, keras_layer_table, load_pretrained, set_phase


def test_keras_layer_table_counts_and_anchors():
    table = keras_layer_table()
    # tf.keras 2.x MobileNetV3Small(include_top=False): 235 layers, hard-swish = 4 layers.
    assert len(table) == 235 and len(keras_layer_table(head="keras3")) == 229
    assert [r.name for r in table[:4]] == ["input_1", "rescaling", "Conv", "Conv/BatchNorm"]
    # Layer 100 (the first trainable one when fine-tuning) sits inside block 5's SE.
    assert table[99].name == "expanded_conv_5/squeeze_excite/Conv"
    assert table[100].name == "expanded_conv_5/squeeze_excite/Relu"
    assert table[-5].name == "Conv_2" and table[-5].module == "conv_2"
    kinds = [r.kind for r in table]
    assert kinds.count("DepthwiseConv2D") == 11 and kinds.count("Add") == 6


def test_every_weight_is_mapped_to_one_keras_layer():
    net = MatrixNet()
    modules = {name.rsplit(".", 1)[0] for name, _ in net.named_parameters()}
    mapped = [r.module for r in keras_layer_table() if r.module]
    assert len(mapped) == len(set(mapped))
    assert modules - set(mapped) == {"fc"}  # the dense output layer is the paper's head


def test_frozen_layers_per_phase():
    net = MatrixNet()
    head = set_phase(net, "head")
    assert head["trainable_tensors"] == ["fc.weight", "fc.bias"]
    assert head["keras_layers_frozen"] == 235

    fine = set_phase(net, "fine_tune", fine_tune_at=100)
    trainable = fine["trainable_tensors"]
    assert trainable[0] == "features.6.block.2.fc2.weight"  # Keras layer 101, SE Conv_1
    assert "features.6.block.2.fc1.weight" in fine["frozen_tensors"]  # Keras layer 99
    assert not any(n.startswith(("features.0.", "features.5.")) for n in trainable)
    assert {"conv_2.weight", "fc.weight", "features.12.0.weight"} <= set(trainable)
    n_trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert n_trainable == fine["trainable_params"]
    assert fine["frozen_params"] + fine["trainable_params"] == sum(
        p.numel() for p in net.parameters()
    )

    everything = set_phase(net, "all")
    assert everything["frozen_tensors"] == [] and all(p.requires_grad for p in net.parameters())
    with pytest.raises(InputError, match="fine_tune_at"):
        set_phase(net, "fine_tune", fine_tune_at=500)


def test_frozen_batch_norm_stays_in_inference_mode():
    net = MatrixNet()
    set_phase(net, "fine_tune", fine_tune_at=100)
    net.train()
    assert not net.features[0][1].training  # frozen stem BN
    assert net.features[12][1].training  # trainable last conv BN
    set_phase(net, "all")
    net.train()
    assert net.features[0][1].training


@pytest.mark.parametrize("head", ["keras2", "keras3"])
def test_forward_shape_and_finite(head):
    net = MatrixNet(head=head).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_load_torchvision_state_dict_from_safetensors_and_pth(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = mobilenet_v3_small().state_dict()
    save_file({k: v.contiguous() for k, v in source.items()}, tmp_path / "w.safetensors")
    torch.save(source, tmp_path / "w.pth")
    for file in ("w.safetensors", "w.pth"):
        net = MatrixNet()
        report = load_pretrained(net, weights_file=tmp_path / file)
        assert report["missing"] == []
        assert sorted(report["ignored"]) == ["classifier.3.bias", "classifier.3.weight"]
        torch.testing.assert_close(
            net.features[3].block[0][0].weight, source["features.3.block.0.0.weight"]
        )
        torch.testing.assert_close(net.conv_2.weight, source["classifier.0.weight"])


def test_load_pretrained_refuses_wrong_or_unsafe_files(tmp_path):
    torch.save({"features.0.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "shape.pth")
    with pytest.raises(ModelError, match="does not fit"):
        load_pretrained(MatrixNet(), weights_file=tmp_path / "shape.pth")
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="no MobileNetV3-Small base weights"):
        load_pretrained(MatrixNet(), weights_file=tmp_path / "other.pth")

    # An arbitrary pickled object: torch.load(weights_only=True) refuses to build it.
    torch.save({"obj": datetime.date(2020, 1, 1)}, tmp_path / "pickle.pth")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_pretrained(MatrixNet(), weights_file=tmp_path / "pickle.pth")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    def offline():
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(_network, "_download_imagenet_state_dict", offline)
    with pytest.raises(ModelError, match="--weights-file") as info:
        load_pretrained(MatrixNet(), weights="imagenet")
    assert "\n" not in str(info.value) and "offline?" in str(info.value)


def test_imagenet_weights_map_onto_the_base(monkeypatch):
    torch.manual_seed(5)
    fake = mobilenet_v3_small().state_dict()
    monkeypatch.setattr(_network, "_download_imagenet_state_dict", lambda: fake)
    net = MatrixNet()
    report = load_pretrained(net, weights="imagenet")
    assert report["source"].endswith("IMAGENET1K_V1") and report["missing"] == []
    np.testing.assert_array_equal(
        net.conv_2.bias.detach().numpy(), fake["classifier.0.bias"].numpy()
    )
