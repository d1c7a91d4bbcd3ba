"""How a trained model compares with another one on the same validation sections.

A user who fine-tunes wants one line at the end of training: did it beat the model
they started from (usually the bundled one) on *their* held-out sections? The
cross-validation folds already hold out every section once; here the other model is
scored on exactly those sections, with the same metrics (Dice per layer, DEJ
position error), so the two numbers are paired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skinoct.layers._evaluate import score_sections
from skinoct.layers._metrics import summarize_dice
from skinoct.layers._model import LayersModel, load_layers_model

__all__ = ["compare_on_folds", "summarize_sections"]


def summarize_sections(sections: list[dict[str, Any]]) -> dict[str, float]:
    """Mean Dice per layer, mean Dice and mean DEJ error (µm) over scored sections."""
    summary = summarize_dice([s["dice"] for s in sections])
    out = {name: v["mean"] for name, v in summary.items()}
    dej = [
        s["boundary_errors"]["dej"]["mae_um"]
        for s in sections
        if "dej" in s.get("boundary_errors", {})
    ]
    dej = np.asarray(dej, dtype=float)
    dej = dej[np.isfinite(dej)]
    out["dej_mae_um"] = float(dej.mean()) if dej.size else float("nan")
    return out


def compare_on_folds(
    other: str | Path | LayersModel,
    dataset,
    fold_results: list[dict[str, Any]],
    *,
    device: str | None = "auto",
) -> dict[str, Any]:
    """Score ``other`` on the validation sections of the folds.

    Parameters
    ----------
    other : str, Path or LayersModel
        A model directory, ``'bundled'`` (the bundled layers model) or a model.
    dataset : LayerDataset
        The training dataset (its records give the validation files).
    fold_results : list of dict
        :func:`~skinoct.layers.train_layers`' fold records (their ``sections`` list
        the validation ids and the trained model's scores).

    Returns
    -------
    dict
        ``{"other": name, "n_sections": n, "trained": {...}, "other_scores": {...}}``
        with :func:`summarize_sections` of both models on the same sections.
    """
    if isinstance(other, LayersModel):
        model, name = other, str(other.path or "model")
    elif str(other) == "bundled":
        from skinoct.models import bundled_model_dir

        model, name = load_layers_model(bundled_model_dir("layers")), "bundled"
    else:
        model, name = load_layers_model(other), str(other)
    trained = [s for r in fold_results for s in r.get("sections", [])]
    by_id = {r.id: r for r in dataset.records}
    records = [by_id[s["id"]] for s in trained if s["id"] in by_id]
    scored = score_sections(model, records, dataset.tissue_values, device=device)
    return {
        "other": name,
        "n_sections": len(records),
        "trained": summarize_sections(trained),
        "other_scores": summarize_sections(scored),
    }
