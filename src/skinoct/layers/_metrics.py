"""Dice per skin layer (MONAI ``DiceMetric``) and its aggregation over sections and folds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from skinoct.io import LABEL_NAMES

__all__ = ["dice_per_layer", "mean_dice", "summarize_dice"]


def dice_per_layer(
    predicted: np.ndarray,
    truth: np.ndarray,
    *,
    label_values: Sequence[int] = (1, 2, 3),
) -> dict[str, float]:
    """Dice coefficient of each label in ``label_values`` between two label masks.

    Computed by :class:`monai.metrics.DiceMetric` on one-hot masks. A label absent
    from ``truth`` gets NaN (``ignore_empty``), never a made-up 0 or 1.

    Parameters
    ----------
    predicted, truth : ndarray of int
        Label masks of the same shape (skinoct labels 0–3).
    label_values : sequence of int
        Labels to score (default: the three layers, air left out).

    Returns
    -------
    dict
        Layer name (``'stratum_corneum'``, ``'epidermis'``, ``'dermis'``) -> Dice.

    Examples
    --------
    >>> a = np.array([[0, 1, 2, 3]]); b = np.array([[0, 1, 3, 3]])
    >>> {k: round(v, 3) for k, v in dice_per_layer(a, b).items()}
    {'stratum_corneum': 1.0, 'epidermis': 0.0, 'dermis': 0.667}
    """
    import torch
    from monai.metrics import DiceMetric

    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"shapes differ: predicted {predicted.shape}, truth {truth.shape}")
    values = [int(v) for v in label_values]
    pred = torch.stack([torch.from_numpy(predicted == v) for v in values])[None].float()
    true = torch.stack([torch.from_numpy(truth == v) for v in values])[None].float()
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=True)
    scores = metric(pred, true)[0].tolist()
    return {LABEL_NAMES[v]: float(s) for v, s in zip(values, scores, strict=True)}


def mean_dice(scores: Mapping[str, float]) -> float:
    """Mean over the layers that have a score (NaN entries left out; NaN if none)."""
    finite = [v for v in scores.values() if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize_dice(per_item: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and count of valid values of each layer's Dice.

    ``per_item`` holds one ``{layer: dice}`` mapping per section (or per fold). Each
    item's ``mean_dice`` (mean over its layers, unless given) is summarised too.

    Returns
    -------
    dict
        ``{layer: {"mean": m, "std": s, "n": count}, ..., "mean_dice": {...}}``; NaN
        values (layer absent from the ground truth) are left out and not counted.
    """
    rows = []
    for item in per_item:
        layers = {k: v for k, v in item.items() if k != "mean_dice"}
        rows.append({**layers, "mean_dice": item.get("mean_dice", mean_dice(layers))})
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names and k != "mean_dice")
    out: dict[str, dict[str, float]] = {}
    for name in [*names, "mean_dice"]:
        vals = np.array(
            [np.nan if row.get(name) is None else row[name] for row in rows], dtype=float
        )
        vals = vals[np.isfinite(vals)]
        out[name] = {
            "mean": float(vals.mean()) if vals.size else float("nan"),
            "std": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
            "n": int(vals.size),
        }
    return out
