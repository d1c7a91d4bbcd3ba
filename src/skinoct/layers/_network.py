"""The segmentation network (MONAI ``UNet``) and the class sets it may predict."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from skinoct.errors import ModelError

__all__ = [
    "ARCHITECTURE_NAME",
    "NetworkSpec",
    "build_network",
    "check_label_values",
    "load_matching_weights",
]

#: Value of ``manifest["architecture"]["name"]`` for layer models.
ARCHITECTURE_NAME = "monai.networks.nets.UNet"
#: Most resolution levels :meth:`NetworkSpec.with_levels` builds (a 2**7 grid divisor).
MAX_LEVELS = 8


@dataclass(frozen=True)
class NetworkSpec:
    """Arguments of :class:`monai.networks.nets.UNet` (2-D, one input channel).

    The defaults are the bundled model's: five resolution levels (four stride-2
    steps; an output pixel's receptive field spans 187 rows), two residual units per
    level, batch normalisation (so a patch-trained network behaves the same on a
    whole section) and dropout 0.1, which MC-dropout reuses at inference.

    Attributes
    ----------
    channels : tuple of int
        Feature maps per level, top to bottom.
    strides : tuple of int
        Down-sampling factor between levels (``len(channels) - 1`` values).
    num_res_units : int
        Residual units per level (0 = plain convolutions).
    dropout : float
        Dropout probability inside every convolution block.
    norm : {'batch', 'instance'}
        Normalisation layer.
    """

    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 2
    dropout: float = 0.1
    norm: str = "batch"

    def __post_init__(self) -> None:
        channels = tuple(int(c) for c in self.channels)
        strides = tuple(int(s) for s in self.strides)
        if len(channels) < 2 or any(c < 1 for c in channels):
            raise ValueError(f"channels needs at least 2 positive values, got {self.channels}")
        if len(strides) != len(channels) - 1 or any(s < 1 for s in strides):
            raise ValueError(
                f"strides needs {len(channels) - 1} positive values (one fewer than "
                f"channels), got {self.strides}"
            )
        if not 0 <= float(self.dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {self.norm!r}")
        if int(self.num_res_units) < 0:
            raise ValueError(f"num_res_units must be >= 0, got {self.num_res_units}")
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "num_res_units", int(self.num_res_units))
        object.__setattr__(self, "dropout", float(self.dropout))

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this (product of the strides)."""
        out = 1
        for s in self.strides:
            out *= s
        return out

    def with_levels(self, levels: int) -> NetworkSpec:
        """This network with ``levels`` resolution levels.

        Deeper: the deepest width is repeated and each new level halves the grid
        again (stride 2), so every added level roughly doubles the rows of context
        (the receptive field: 187, 379, 763 rows for 5, 6, 7 levels of the default
        network) at little cost, the new levels being the smallest feature maps.
        Shallower: the lower levels are dropped. The levels above the deepest one
        both networks share keep their tensors' names and shapes, so weights of this
        network fit them (:func:`load_matching_weights`); the deepest shared level's
        decoder takes another number of input channels and starts fresh.

        Parameters
        ----------
        levels : int
            Resolution levels, 2 to :data:`MAX_LEVELS`.

        Returns
        -------
        NetworkSpec
            Same residual units, dropout and normalisation.

        Raises
        ------
        ValueError
            For a depth outside 2 to :data:`MAX_LEVELS` or a non-integer.

        Examples
        --------
        >>> NetworkSpec().with_levels(7).channels
        (8, 16, 32, 64, 128, 128, 128)
        """
        try:
            levels = operator.index(levels)
        except TypeError:
            raise ValueError(f"levels must be an integer, got {levels!r}") from None
        if not 2 <= levels <= MAX_LEVELS:
            raise ValueError(f"levels must be 2-{MAX_LEVELS}, got {levels}")
        extra = max(0, levels - len(self.channels))
        return replace(
            self,
            channels=self.channels[:levels] + (self.channels[-1],) * extra,
            strides=self.strides[: levels - 1] + (2,) * extra,
        )

    def unet_args(self, out_channels: int) -> dict[str, Any]:
        """Keyword arguments of ``monai.networks.nets.UNet``, JSON-ready."""
        return {
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": int(out_channels),
            "channels": list(self.channels),
            "strides": list(self.strides),
            "num_res_units": self.num_res_units,
            "norm": self.norm,
            "dropout": self.dropout,
        }

    @classmethod
    def from_unet_args(cls, args: dict[str, Any]) -> NetworkSpec:
        """Inverse of :meth:`unet_args` (``out_channels`` is the class count)."""
        try:
            return cls(
                channels=tuple(args["channels"]),
                strides=tuple(args["strides"]),
                num_res_units=int(args.get("num_res_units", 0)),
                dropout=float(args.get("dropout", 0.0)),
                norm=str(args.get("norm", "batch")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid UNet arguments in the manifest: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        out["strides"] = list(self.strides)
        return out


def build_network(spec: NetworkSpec, n_classes: int):
    """Build the MONAI ``UNet`` for ``spec`` with ``n_classes`` output channels."""
    from monai.networks.nets import UNet

    return UNet(**spec.unet_args(n_classes))


def check_label_values(values: Sequence[int], *, path=None) -> tuple[int, ...]:
    """Validate a class set: at least two distinct skinoct labels, sorted.

    Raises
    ------
    ModelError
        For a label outside 0 (air), 1 (stratum corneum), 2 (epidermis), 3 (dermis),
        duplicates, or fewer than two classes.
    """
    from skinoct.io import check_label_set

    return check_label_set(values, path=path, error=ModelError)


def load_matching_weights(
    network,
    state_dict: dict[str, Any],
    *,
    spec: NetworkSpec | None = None,
    source_labels: Sequence[int] | None = None,
    target_labels: Sequence[int] | None = None,
) -> list[str]:
    """Load the tensors of ``state_dict`` that fit ``network``; map the head by label.

    Used by fine-tuning (``--init``). The feature extractor is loaded by name and
    shape. When the initial model was trained for another class set (``spec``,
    ``source_labels`` and ``target_labels`` given), the output layers are not
    started from scratch: every class of ``target_labels`` that the initial model
    also predicts (same skinoct label value, e.g. air, epidermis and dermis of a
    ``[0, 2, 3]`` dataset fine-tuned from the four-class bundled model) takes that
    class's weights, along every axis of the tensor that indexes classes; classes the
    initial model does not know keep their fresh weights. Without the labels the
    class-dependent tensors start from fresh weights. The names of the tensors that
    were not loaded at all are returned and reported in a warning, never dropped
    silently.

    Raises
    ------
    ModelError
        When no tensor matches (a different architecture altogether).
    """
    import torch

    own = network.state_dict()
    usable = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    mapped: list[str] = []
    if spec is not None and source_labels is not None and target_labels is not None:
        source = [int(v) for v in source_labels]
        target = [int(v) for v in target_labels]
        if source != target:
            dims = _class_axes(spec, len(source))
            pairs = [(i, source.index(v)) for i, v in enumerate(target) if v in source]
            for name, axes in dims.items():
                usable.pop(name, None)  # same shape does not mean same classes
                if name not in own or name not in state_dict or not pairs:
                    continue
                src = state_dict[name]
                out = own[name].detach().clone()
                if any(src.shape[a] != len(source) or out.shape[a] != len(target) for a in axes):
                    continue
                rest = [a for a in range(out.dim()) if a not in axes]
                if any(src.shape[a] != out.shape[a] for a in rest):
                    continue
                t_idx = torch.tensor([p[0] for p in pairs])
                s_idx = torch.tensor([p[1] for p in pairs])
                grid_t = _axis_grid(out.shape, axes, t_idx)
                grid_s = _axis_grid(src.shape, axes, s_idx)
                out[grid_t] = src.to(out.dtype)[grid_s]
                usable[name] = out
                mapped.append(name)
    # Counters, PReLU slopes and the head's bias match any network with as many classes
    # by name and shape: only convolution kernels count as fitting.
    if not any(v.is_floating_point() and v.dim() >= 2 for v in usable.values()):
        raise ModelError("the initial model's weights do not fit this network at all")
    skipped = sorted(set(own) - set(usable))
    network.load_state_dict(usable, strict=False)
    if mapped:
        new = sorted(set(target) - set(source))
        warnings.warn(
            f"class set changed ({source} -> {target}): {len(mapped)} output tensors take "
            "the initial model's weights of the classes both sets share"
            + (f"; label(s) {new} start from fresh weights" if new else ""),
            stacklevel=2,
        )
    if skipped:
        warnings.warn(
            f"{len(skipped)} tensors of this network have no match in the initial model "
            f"(another class set or architecture) and start from fresh weights: "
            f"{', '.join(skipped[:6])}"
            + (" ..." if len(skipped) > 6 else ""),
            stacklevel=2,
        )
    return skipped


def _class_axes(spec: NetworkSpec, n_classes: int) -> dict[str, list[int]]:
    """Per tensor name, the axes whose length is the class count.

    Found by building the network for ``n_classes`` and ``n_classes + 1`` classes and
    comparing shapes, so no layer name of MONAI's ``UNet`` is hard-coded here.
    """
    a = build_network(spec, n_classes).state_dict()
    b = build_network(spec, n_classes + 1).state_dict()
    out = {}
    for name, value in a.items():
        pairs = zip(value.shape, b[name].shape, strict=True)
        axes = [i for i, (m, n) in enumerate(pairs) if m != n]
        if axes:
            out[name] = axes
    return out


def _axis_grid(shape, axes: Sequence[int], index):
    """An open index grid selecting ``index`` along ``axes`` and everything elsewhere."""
    import torch

    parts = [index if a in axes else torch.arange(n) for a, n in enumerate(shape)]
    grids = []
    for a, part in enumerate(parts):
        view = [1] * len(parts)
        view[a] = len(part)
        grids.append(part.reshape(view))
    return tuple(grids)
