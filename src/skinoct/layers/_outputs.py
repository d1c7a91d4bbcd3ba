"""Files written per segmented section by ``skinoct layers segment``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import InputError
from skinoct.io import LABEL_NAMES, Image, provenance_banner, write_image, write_json
from skinoct.layers._inference import SegmentationResult
from skinoct.layers._model import LayersModel
from skinoct.layers._overlay import boundary_overlay, entropy_overlay, write_rgb_png

__all__ = ["OUTPUT_SUFFIXES", "write_segmentation"]

#: What is written for an input with stem ``<stem>``.
OUTPUT_SUFFIXES = {
    "mask": "_mask.tif",
    "entropy": "_entropy.tif",
    "overlay": "_overlay.png",
    "entropy_overlay": "_entropy.png",
    "metrics": ".metrics.json",
}


def write_segmentation(
    out_dir: str | Path,
    stem: str,
    image: Image,
    result: SegmentationResult,
    *,
    model: LayersModel,
    options: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the mask, entropy map, both overlays and the morphometry of one section.

    Everything comes from one decoded result: the mask is ``result.labels`` (ordered
    decoding by default), the boundaries drawn and measured are extracted from that
    mask, and the metrics are :func:`skinoct.morphometry.measure_section` of the mask
    and the raw entropy map with the model's calibrated DEJ-entropy threshold, so
    ``skinoct layers measure <stem>_mask.tif --entropy <stem>_entropy.tif`` gives the
    same numbers (with ``--entropy-threshold``, ``--entropy-band-um`` and
    ``--min-segment-um`` for a model other than the bundled one).

    ``<stem>_mask.tif`` (labels, uint8, the image's spacing), ``<stem>_entropy.tif``
    (float32, 0–1), ``<stem>_overlay.png`` (boundaries: blue surface, red SC
    junction, green DEJ), ``<stem>_entropy.png`` (violet low -> yellow high) and
    ``<stem>.metrics.json`` (:func:`skinoct.morphometry.measure_section` plus the
    model and options used). Each file is written atomically.

    When morphometry fails on the predicted mask (no skin found, say) the images are
    still written and ``metrics`` is ``null`` with ``metrics_error`` saying why.

    Returns
    -------
    dict of str to Path
        Keys of :data:`OUTPUT_SUFFIXES`.
    """
    from skinoct.layers._calibration import UNCERTAINTY_KEY, dej_flag_settings
    from skinoct.morphometry import extract_boundaries, measure_section

    out_dir = Path(out_dir)
    paths = {key: out_dir / f"{stem}{suffix}" for key, suffix in OUTPUT_SUFFIXES.items()}
    spacing = tuple(image.spacing_um)
    metrics: dict[str, Any] | None = None
    error = None
    flag = dej_flag_settings(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            # One source of truth: the metrics, boundaries and overlay come from the saved
            # (decoded) mask and entropy map alone, exactly what `skinoct layers measure`
            # reads back; no sub-pixel refinement from probabilities that are not saved.
            section_metrics = measure_section(
                result.labels, spacing, entropy=result.entropy, entropy_threshold=flag.threshold,
                entropy_band_um=flag.band_um, min_segment_um=flag.min_segment_um,
            )  # fmt: skip
        metrics = section_metrics.to_dict()
        boundaries = section_metrics.boundaries
    except InputError as exc:
        error = exc.reason
        try:
            boundaries = extract_boundaries(result.labels, spacing)
        except InputError:
            boundaries = {}

    write_image(paths["mask"], result.labels, spacing_um=spacing, axes="zx")
    write_image(paths["entropy"], result.entropy.astype(np.float32), spacing_um=spacing, axes="zx")
    write_rgb_png(paths["overlay"], boundary_overlay(image.data, boundaries, spacing))
    write_rgb_png(paths["entropy_overlay"], entropy_overlay(image.data, result.entropy))
    counts = np.bincount(result.labels.ravel(), minlength=4)
    record = {
        "image": str(image.path) if image.path else None,
        "shape": list(result.labels.shape),
        "spacing_um": list(spacing),
        "spacing_source": image.spacing_source,
        "model": {
            "path": str(model.path) if model.path else None,
            "weights_sha256": model.weights_sha256,
            # weights + manifest identity (skinoct.models.model_provenance)
            "manifest_sha256": model.manifest_sha256,
            "model_digest": model.provenance()["model_digest"],
            "classes": list(model.class_names),
            "trained_on_synthetic_data": model.is_synthetic,
        },
        "options": options or {},
        "decoding": result.decoding,
        "uncertainty": {
            "dej_entropy_threshold": flag.threshold,
            "entropy_band_um": flag.band_um,
            "min_segment_um": flag.min_segment_um,
            "calibrated": UNCERTAINTY_KEY in model.manifest,
        },
        "label_fraction": {LABEL_NAMES[v]: float(counts[v] / counts.sum()) for v in LABEL_NAMES},
        "entropy_mean": float(result.entropy.mean()),
        "metrics": metrics,
    }
    if error is not None:
        record["metrics_error"] = error
    record["provenance"] = provenance_banner(model.manifest)  # phantom-trained: plain words
    write_json(paths["metrics"], record)
    return paths
