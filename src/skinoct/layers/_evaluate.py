"""Scoring a model on an annotated dataset (Dice per layer, at each section's resolution)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skinoct.io import INDETERMINATE, read_image, read_mask
from skinoct.layers._boundary_metrics import boundary_errors
from skinoct.layers._data import discover_dataset
from skinoct.layers._inference import segment_section
from skinoct.layers._metrics import dice_per_layer, summarize_dice
from skinoct.layers._model import LayersModel, load_layers_model

__all__ = ["evaluate_dataset", "merge_unannotated", "score_sections"]


def score_sections(
    model: LayersModel,
    records,
    label_values,
    *,
    engine: str = "torch",
    tta: bool = False,
    device: str | None = "auto",
) -> list[dict[str, Any]]:
    """Dice per layer (``label_values``) of ``model`` on each record's section.

    Sections are segmented at their own resolution through :func:`segment_section`,
    the same path as ``skinoct layers segment``. Each record also holds the
    column-wise boundary position errors in µm (``boundary_errors``: surface, SC
    junction, DEJ; :func:`~skinoct.layers._boundary_metrics.boundary_errors`). A
    label the model predicts but the dataset does not annotate is merged into the
    annotated layer that contains it (stratum corneum into a one-band epidermis).
    Indeterminate reference pixels (255) are left out of the Dice, and columns holding
    any are left out of the boundary errors.
    """
    annotated = tuple(int(v) for v in label_values)
    out = []
    for record in records:
        image = read_image(record.image, axes="zx")
        mask = read_mask(record.mask, axes="zx", allow_indeterminate=True)
        result = segment_section(
            image.data, model, spacing_um=image.spacing_um, engine=engine, tta=tta, device=device
        )
        labels = merge_unannotated(result.labels, annotated)
        reference = mask.data
        unknown = reference == INDETERMINATE
        labels = np.where(unknown, reference, labels)  # 255 in both: counts for no class
        dice = dice_per_layer(labels, reference, label_values=label_values)
        known = ~unknown.any(axis=0)  # columns whose boundaries are all annotated
        errors = boundary_errors(
            labels[:, known], reference[:, known], spacing_um=image.spacing_um,
            label_values=(0, *annotated),
        )  # fmt: skip
        out.append(
            {"id": record.id, "subject": record.subject, "dice": dice, "boundary_errors": errors}
        )
    return out


def merge_unannotated(labels: np.ndarray, tissue_values) -> np.ndarray:
    """Map a predicted stratum corneum to epidermis where the annotation has no SC class.

    Datasets that annotate the epidermis as one band (labels 0, 2, 3) include the SC
    in it; scoring a four-class prediction against them must do the same.
    """
    values = set(int(v) for v in tissue_values)
    if 1 in values or 2 not in values:
        return labels
    return np.where(labels == 1, np.uint8(2), labels).astype(labels.dtype, copy=False)


def evaluate_dataset(
    model: LayersModel | str | Path,
    data_dir: str | Path,
    *,
    engine: str = "torch",
    tta: bool = False,
    device: str | None = "auto",
) -> dict[str, Any]:
    """Segment every section of a dataset and score it against its mask.

    Only the layers that both the dataset annotates and the model predicts are
    scored (a partial label set gives Dice for its classes only).

    Returns
    -------
    dict
        ``sections``: ``[{id, subject, dice: {layer: value}}]``; ``summary``: mean,
        sd and count per layer and of the mean Dice (:func:`summarize_dice`);
        ``layers``, ``n_sections``, ``model``.

    Raises
    ------
    InputError
        For a dataset that cannot be read (see :func:`discover_dataset`).
    """
    if not isinstance(model, LayersModel):
        model = load_layers_model(model)
    dataset = discover_dataset(data_dir)
    scored = tuple(v for v in dataset.tissue_values if v in model.label_values)
    sections = score_sections(model, dataset.records, scored, engine=engine, tta=tta, device=device)
    return {
        "dataset": str(dataset.root),
        "n_sections": len(sections),
        "layers": [s for s in sections[0]["dice"]] if sections else [],
        "model": {
            "path": str(model.path) if model.path else None,
            "weights_sha256": model.weights_sha256,
        },
        "options": {"engine": engine, "tta": tta},
        "summary": summarize_dice([s["dice"] for s in sections]),
        "sections": sections,
    }
