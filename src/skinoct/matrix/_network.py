"""The grading network: torchvision MobileNetV3-Small with the paper's head.

Seed 002 §2.2.3 used ``tf.keras.applications.MobileNetV3Small(include_top=False)``
as the base, then added global average pooling and a dense softmax layer with four
outputs. This module rebuilds that model from torchvision's ``mobilenet_v3_small``
and maps Keras' layer list onto torchvision modules, so that "the first 100
layers frozen" means the same weights here as there.

Keras base model, layer by layer (tf.keras 2.6–2.15, ``include_preprocessing=True``)
-----------------------------------------------------------------------------------
``model.layers`` of the Keras base lists every operation as a layer, including the
weight-free ones: the input, ``Rescaling``, each ``ReLU``, and the three layers of
every ``hard_sigmoid`` (``x + 3``, ``ReLU(6)``, ``× 1/6``; a ``hard_swish`` adds a
``Multiply``). :func:`keras_layer_table` regenerates that list (235 layers) from the
block configuration and names the torchvision module holding each layer's
weights. In tf.keras 2.x the base with ``include_top=False`` ends with
``Conv_1`` (576) → hard-swish → global pooling → ``Conv_2`` (1×1, 1024, bias) →
hard-swish; torchvision keeps ``Conv_2`` as ``classifier[0]`` (a ``Linear``
576→1024 after pooling, identical on a 1×1 map). Keras 3 moved pooling and
``Conv_2`` into the top; ``head='keras3'`` builds that variant (576 → 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from skinoct.errors import InputError, ModelError

__all__ = [
    "ARCHITECTURE",
    "HEADS",
    "KerasLayer",
    "MatrixNet",
    "build_network",
    "keras_layer_table",
    "load_pretrained",
    "set_phase",
]

ARCHITECTURE = "mobilenet_v3_small"
Head = Literal["keras2", "keras3"]
HEADS = ("keras2", "keras3")
Phase = Literal["head", "fine_tune", "all"]
PHASES = ("head", "fine_tune", "all")

#: Inverted-residual blocks of MobileNetV3-Small (Keras ``stack_fn`` / torchvision
#: ``_mobilenet_v3_conf``): expansion channels, output channels, kernel, stride,
#: squeeze-excitation, activation ('RE' ReLU, 'HS' hard-swish).
_BLOCKS = (
    (16, 16, 3, 2, True, "RE"),
    (72, 24, 3, 2, False, "RE"),
    (88, 24, 3, 1, False, "RE"),
    (96, 40, 5, 2, True, "HS"),
    (240, 40, 5, 1, True, "HS"),
    (240, 40, 5, 1, True, "HS"),
    (120, 48, 5, 1, True, "HS"),
    (144, 48, 5, 1, True, "HS"),
    (288, 96, 5, 2, True, "HS"),
    (576, 96, 5, 1, True, "HS"),
    (576, 96, 5, 1, True, "HS"),
)


@dataclass(frozen=True)
class KerasLayer:
    """One entry of the Keras base model's ``layers`` list.

    Attributes
    ----------
    index : int
        Position in ``base_model.layers`` (0 = the input layer).
    name : str
        Keras layer name (weight-free operation layers get a descriptive name).
    kind : str
        Keras layer class (``Conv2D``, ``BatchNormalization``, ``TFOpLambda``, …).
    module : str or None
        Dotted name of the torchvision/skinoct module holding its weights; None
        for layers without weights.
    """

    index: int
    name: str
    kind: str
    module: str | None


def keras_layer_table(*, head: Head = "keras2") -> list[KerasLayer]:
    """The layers of Keras' ``MobileNetV3Small(include_top=False)``, in order.

    Follows ``keras/applications/mobilenet_v3.py`` of tf.keras 2.6–2.15 (the
    release line of the paper's time): input, rescaling, stem, eleven inverted
    residual blocks, ``Conv_1``, and with ``head='keras2'`` the pooled ``Conv_2``.

    Returns
    -------
    list of KerasLayer
        235 layers for ``'keras2'``, 229 for ``'keras3'`` (counted with the
        tf.keras layer semantics, where ``hard_swish`` is four layers).
    """
    if head not in HEADS:
        raise InputError(f"head must be one of {HEADS}, got {head!r}")
    rows: list[tuple[str, str, str | None]] = []

    def add(name, kind, module=None):
        rows.append((name, kind, module))

    def activation(prefix, act):
        if act == "RE":
            add(f"{prefix}ReLU", "ReLU")
        else:
            hard_sigmoid(prefix)
            add(f"{prefix}hard_swish/Multiply", "Multiply")

    def hard_sigmoid(prefix):
        add(f"{prefix}hard_sigmoid/add", "TFOpLambda")
        add(f"{prefix}hard_sigmoid/ReLU6", "ReLU")
        add(f"{prefix}hard_sigmoid/multiply", "TFOpLambda")

    add("input_1", "InputLayer")
    add("rescaling", "Rescaling")
    add("Conv", "Conv2D", "features.0.0")
    add("Conv/BatchNorm", "BatchNormalization", "features.0.1")
    activation("Conv/", "HS")
    in_channels = 16
    for block_id, (expanded, out, _kernel, stride, se, act) in enumerate(_BLOCKS):
        feature = f"features.{block_id + 1}.block"
        prefix = f"expanded_conv_{block_id}/" if block_id else "expanded_conv/"
        sub = 0
        if block_id:  # Keras expands every block but the first (same in torchvision)
            add(f"{prefix}expand", "Conv2D", f"{feature}.{sub}.0")
            add(f"{prefix}expand/BatchNorm", "BatchNormalization", f"{feature}.{sub}.1")
            activation(f"{prefix}expand/", act)
            sub += 1
        if stride == 2:
            add(f"{prefix}depthwise/pad", "ZeroPadding2D")
        add(f"{prefix}depthwise", "DepthwiseConv2D", f"{feature}.{sub}.0")
        add(f"{prefix}depthwise/BatchNorm", "BatchNormalization", f"{feature}.{sub}.1")
        activation(f"{prefix}depthwise/", act)
        sub += 1
        if se:
            se_prefix = f"{prefix}squeeze_excite/"
            add(f"{se_prefix}AvgPool", "GlobalAveragePooling2D")
            add(f"{se_prefix}Conv", "Conv2D", f"{feature}.{sub}.fc1")
            add(f"{se_prefix}Relu", "ReLU")
            add(f"{se_prefix}Conv_1", "Conv2D", f"{feature}.{sub}.fc2")
            hard_sigmoid(se_prefix)
            add(f"{se_prefix}Mul", "Multiply")
            sub += 1
        add(f"{prefix}project", "Conv2D", f"{feature}.{sub}.0")
        add(f"{prefix}project/BatchNorm", "BatchNormalization", f"{feature}.{sub}.1")
        if stride == 1 and in_channels == out:
            add(f"{prefix}Add", "Add")
        in_channels = out
        del expanded
    add("Conv_1", "Conv2D", "features.12.0")
    add("Conv_1/BatchNorm", "BatchNormalization", "features.12.1")
    activation("Conv_1/", "HS")
    if head == "keras2":
        add("global_average_pooling2d", "GlobalAveragePooling2D")
        add("Conv_2", "Conv2D", "conv_2")
        activation("Conv_2/", "HS")
    return [KerasLayer(i, n, k, m) for i, (n, k, m) in enumerate(rows)]


class MatrixNet(nn.Module):
    """MobileNetV3-Small features + (``Conv_2``) + global average pooling + dense.

    ``forward`` returns logits; their softmax is the paper's softmax output layer
    (grade probabilities). Batch-norm layers of frozen modules stay in inference
    mode while training, as Keras does for ``trainable = False`` layers.

    Parameters
    ----------
    head : {'keras2', 'keras3'}
        ``'keras2'`` (default): the tf.keras 2.x base, which ends with the pooled
        1×1 ``Conv_2`` (576→1024) + hard-swish, then the dense layer 1024→4.
        ``'keras3'``: pooling of the 576 ``Conv_1`` channels, then dense 576→4.
    num_classes : int
        Number of grades (4).
    """

    def __init__(self, *, head: Head = "keras2", num_classes: int = 4) -> None:
        from torchvision.models import mobilenet_v3_small

        super().__init__()
        if head not in HEADS:
            raise InputError(f"head must be one of {HEADS}, got {head!r}")
        if int(num_classes) < 2:
            raise InputError(f"num_classes must be at least 2, got {num_classes}")
        self.head = head
        self.features = mobilenet_v3_small(weights=None).features
        self.pool = nn.AdaptiveAvgPool2d(1)
        width = 576
        if head == "keras2":
            self.conv_2 = nn.Linear(576, 1024)
            self.act_2 = nn.Hardswish()
            width = 1024
        self.fc = nn.Linear(width, int(num_classes))
        self._frozen_bn: tuple[str, ...] = ()

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        if self.head == "keras2":
            x = self.act_2(self.conv_2(x))
        return self.fc(x)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self._frozen_bn:
            modules = dict(self.named_modules())
            for name in self._frozen_bn:
                modules[name].eval()
        return self


def build_network(*, head: Head = "keras2", num_classes: int = 4) -> MatrixNet:
    """A freshly initialised :class:`MatrixNet` (no pretrained weights)."""
    return MatrixNet(head=head, num_classes=num_classes)


def set_phase(net, phase: Phase, *, fine_tune_at: int = 100) -> dict:
    """Freeze the network as in one training phase of seed 002 §2.2.3.

    Parameters
    ----------
    net : MatrixNet
    phase : {'head', 'fine_tune', 'all'}
        ``'head'``: transfer learning, only the dense output layer trains (the
        paper's "last two layers", pooling and dense; pooling has no weights).
        ``'fine_tune'``: the first ``fine_tune_at`` layers of the Keras base are
        frozen (mapped with :func:`keras_layer_table`), everything after trains.
        ``'all'``: every layer trains (training from scratch).
    fine_tune_at : int
        Number of leading Keras base layers kept frozen in ``'fine_tune'``.

    Returns
    -------
    dict
        ``phase``, ``keras_layers_frozen``, ``frozen_tensors`` / ``trainable_tensors``
        (parameter names), ``frozen_params`` / ``trainable_params`` (counts).
    """
    if phase not in PHASES:
        raise InputError(f"phase must be one of {PHASES}, got {phase!r}")
    table = keras_layer_table(head=net.head)
    if phase == "fine_tune" and not 0 <= int(fine_tune_at) <= len(table):
        raise InputError(
            f"fine_tune_at must be between 0 and {len(table)} (Keras base layers), "
            f"got {fine_tune_at}"
        )
    if phase == "head":
        keras_frozen = len(table)
    elif phase == "fine_tune":
        keras_frozen = int(fine_tune_at)
    else:
        keras_frozen = 0
    frozen_modules = {row.module for row in table[:keras_frozen] if row.module}
    frozen, trainable = [], []
    for name, param in net.named_parameters():
        module = name.rsplit(".", 1)[0]
        is_frozen = module in frozen_modules
        param.requires_grad_(not is_frozen)
        (frozen if is_frozen else trainable).append(name)
    net._frozen_bn = tuple(
        name
        for name, module in net.named_modules()
        if name in frozen_modules and isinstance(module, nn.modules.batchnorm._BatchNorm)
    )
    net.train(net.training)
    counts = dict(net.named_parameters())
    return {
        "phase": phase,
        "keras_layers_frozen": keras_frozen,
        "keras_layers_total": len(table),
        "frozen_tensors": frozen,
        "trainable_tensors": trainable,
        "frozen_params": int(sum(counts[n].numel() for n in frozen)),
        "trainable_params": int(sum(counts[n].numel() for n in trainable)),
    }


def _download_imagenet_state_dict() -> dict:
    """torchvision's ImageNet weights for MobileNetV3-Small (downloads once)."""
    from torchvision.models import MobileNet_V3_Small_Weights

    return MobileNet_V3_Small_Weights.IMAGENET1K_V1.get_state_dict(progress=False)


def load_pretrained(net, *, weights: str | None = None, weights_file: str | Path | None = None):
    """Load ImageNet weights into the base of ``net``; return a report.

    Parameters
    ----------
    weights : {'imagenet'}, optional
        torchvision's ``MobileNet_V3_Small_Weights.IMAGENET1K_V1`` (downloaded once
        into the torch hub cache; needs internet the first time).
    weights_file : str or Path, optional
        A local torchvision MobileNetV3-Small state dict: ``.safetensors``, or a
        ``.pth``/``.pt`` file read with ``torch.load(weights_only=True)`` (no
        pickle code runs).

    Returns
    -------
    dict
        ``source``, ``loaded`` (number of tensors), ``missing`` and ``ignored``
        (key names), so the caller can log what did not match.

    Raises
    ------
    ModelError
        Download failure (one line, naming ``--weights-file`` as the offline way),
        unreadable file, or tensors whose shapes do not fit.
    """
    if (weights is None) == (weights_file is None):
        raise InputError("give exactly one of weights='imagenet' or weights_file")
    if weights is not None:
        if weights != "imagenet":
            raise InputError(f"weights must be 'imagenet', got {weights!r}")
        try:
            state = _download_imagenet_state_dict()
        except Exception as exc:  # URLError, HTTPError, OSError, hash mismatch …
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                "cannot download torchvision's ImageNet weights for MobileNetV3-Small "
                f"(offline? {reason[:160]}); pass a local state dict with --weights-file PATH "
                "or train from scratch"
            ) from exc
        source = "torchvision MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    else:
        path = Path(weights_file)
        if not path.is_file():
            raise ModelError("weights file not found", path=path)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(
                f"cannot read weights (safetensors or a plain state dict expected): "
                f"{str(exc).splitlines()[0][:200]}",
                path=path,
            ) from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ModelError("file does not hold a state dict", path=path)
        source = str(path)
    target = net.state_dict()
    mapped, ignored = {}, []
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name.startswith("classifier.0."):
            name = "conv_2." + name.removeprefix("classifier.0.")
        if name in target and name.split(".")[0] in ("features", "conv_2"):
            if tuple(value.shape) != tuple(target[name].shape):
                raise ModelError(
                    f"{key}: shape {tuple(value.shape)} does not fit MobileNetV3-Small "
                    f"({tuple(target[name].shape)})",
                    path=weights_file,
                )
            mapped[name] = value
        else:
            ignored.append(key)
    if not mapped:
        raise ModelError(
            "no MobileNetV3-Small base weights found (expected torchvision keys 'features.*')",
            path=weights_file,
        )
    base_keys = [k for k in target if k.split(".")[0] in ("features", "conv_2")]
    missing = [k for k in base_keys if k not in mapped]
    net.load_state_dict(mapped, strict=False)
    return {"source": source, "loaded": len(mapped), "missing": missing, "ignored": ignored}
