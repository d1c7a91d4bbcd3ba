"""Fold ensembles: the cross-validation models averaged at inference.

``skinoct layers train`` with k >= 2 folds keeps each fold's model in
``MODEL_DIR/folds/fold_<k>/``. Averaging their softmax probabilities is nnU-Net's
default inference (Isensee et al., Nature Methods 2021) and usually more accurate and
better calibrated than one model retrained on all data, at k times the inference cost.

The ensemble is a :class:`~skinoct.layers.LayersModel` whose network returns
``log(mean_k softmax(net_k(x)))``: the softmax of that is exactly the mean of the
members' probabilities, so every inference path (sliding window, TTA, entropy,
ordered decoding, ONNX export) works on it unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from skinoct.errors import ModelError
from skinoct.layers._model import LayersModel, load_layers_model

__all__ = ["EnsembleLayersModel", "load_layers_ensemble"]


def _mean_probability_class():
    import torch
    from torch import nn

    class MeanProbabilities(nn.Module):
        """``log`` of the members' mean softmax: logits whose softmax is that mean."""

        def __init__(self, nets) -> None:
            super().__init__()
            self.members = nn.ModuleList(nets)

        def forward(self, x):
            p = torch.stack([torch.softmax(net(x), dim=1) for net in self.members]).mean(0)
            return torch.log(p.clamp_min(1e-12))

    return MeanProbabilities


class EnsembleLayersModel(LayersModel):
    """Several layer models with the same classes, grid and normalisation, averaged.

    Parameters
    ----------
    members : sequence of LayersModel
        At least two models that agree on ``label_values``, ``spacing_um``,
        ``normalization`` and the network's divisor.
    manifest : dict, optional
        Manifest shown for the ensemble (provenance, notice); ``ensemble`` and
        ``weights_sha256`` are set from the members.
    path : str or Path, optional
        Model directory the ensemble came from.

    Raises
    ------
    ModelError
        Fewer than two members, or members that disagree.
    """

    def __init__(self, members, *, manifest: dict[str, Any] | None = None, path=None) -> None:
        members = list(members)
        if len(members) < 2:
            raise ModelError(f"an ensemble needs at least 2 models, got {len(members)}", path=path)
        first = members[0]
        for m in members[1:]:
            same = (
                m.label_values == first.label_values
                and m.spacing_um == first.spacing_um
                and m.normalization == first.normalization
                and m.spec.divisor == first.spec.divisor
            )
            if not same:
                raise ModelError(
                    "ensemble members differ in classes, grid, normalisation or divisor "
                    f"({first.path} vs {m.path})",
                    path=path,
                )
        self.members = members
        shas = [m.weights_sha256 or "" for m in members]
        combined = hashlib.sha256("".join(shas).encode()).hexdigest()
        manifest = {
            **dict(manifest or first.manifest),
            "weights_sha256": combined,
            "ensemble": {"n_members": len(members), "members_sha256": shas},
        }
        state = {
            f"members.{k}.{name}": v
            for k, m in enumerate(members)
            for name, v in m.state_dict().items()
        }
        super().__init__(
            first.spec,
            state,
            label_values=first.label_values,
            spacing_um=first.spacing_um,
            normalization=first.normalization,
            max_window=first.max_window,
            manifest=manifest,
            path=path,
        )

    def network(self, device="cpu"):
        """The averaging network on ``device`` (eval mode, built once per device)."""
        device = str(device)
        if device not in self._networks:
            nets = [m.network(device) for m in self.members]
            self._networks[device] = _mean_probability_class()(nets).to(device).eval()
        return self._networks[device]

    def export_onnx(self, path: str | Path) -> Path:
        """Export the averaging network (all members in one graph)."""
        import torch

        from skinoct.models import export_onnx

        d = self.spec.divisor
        example = torch.zeros((1, 1, 2 * d, 2 * d), dtype=torch.float32)
        return export_onnx(
            self.network("cpu"), example, path, dynamic_axes={0: "batch", 2: "height", 3: "width"}
        )

    def __repr__(self) -> str:
        return f"EnsembleLayersModel({len(self.members)} members, path={str(self.path)!r})"


def load_layers_ensemble(path: str | Path) -> EnsembleLayersModel:
    """The fold models of a trained model directory (``folds/fold_*``) as one ensemble.

    Raises
    ------
    ModelError
        When the directory holds fewer than two fold models (train with ``--folds``
        of 2 or more; the bundled model ships without folds).
    """
    path = Path(path)
    folds = sorted(p for p in (path / "folds").glob("fold_*") if (p / "model.json").is_file())
    if len(folds) < 2:
        raise ModelError(
            f"no fold models to ensemble in {path / 'folds'} (found {len(folds)}; train "
            "with 2 or more folds)",
            path=path,
        )
    members = [load_layers_model(p) for p in folds]
    main = path / "model.json"
    manifest = load_layers_model(path).manifest if main.is_file() else members[0].manifest
    return EnsembleLayersModel(members, manifest=manifest, path=path)
