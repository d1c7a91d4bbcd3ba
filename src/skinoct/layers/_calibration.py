"""Calibration of the DEJ-uncertainty flag against a model's own entropy on clean sections.

Seed 000 proposes the segmentation entropy as an indicator of a disrupted DEJ. A fixed
threshold does not transfer between models (the bundled model's DEJ entropy rarely
reaches 0.5, so a 0.5 threshold flags nothing). Here the threshold is set from the
model's own behaviour: each clean section gets the highest threshold at which it
would be flagged (:func:`skinoct.morphometry.dej_flag_score`: the largest minimum,
over any ``min_segment_um`` stretch, of the excess DEJ entropy of
:func:`skinoct.morphometry.excess_dej_entropy`), and the
threshold is the conformal ``quantile`` of these n scores (the ⌈(n + 1)·quantile⌉-th
smallest; :func:`calibration_threshold`), so that a new clean section from the same
population is flagged with probability at most ``1 − quantile`` (Angelopoulos & Bates,
"A gentle introduction to conformal prediction", 2021, §1.1: split conformal
prediction). An interpolated empirical quantile is optimistic for the tens of
validation sections a user's training run has.

The result is stored in the model manifest under the top-level key ``uncertainty``,
with the DEJ band and the minimum segment length the scores were computed with (a
threshold holds only with those); every writer (``skinoct layers segment``,
``skinoct analyze``, :func:`skinoct.morphometry.measure_section` through
:func:`dej_flag_settings`) uses the three together by default.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from skinoct.errors import InputError, ModelError
from skinoct.layers._inference import segment_section
from skinoct.layers._model import LayersModel, load_layers_model

__all__ = [
    "DEFAULT_CALIBRATION_QUANTILE",
    "UNCERTAINTY_KEY",
    "DejFlag",
    "calibrate_uncertainty",
    "calibration_threshold",
    "dej_entropy_threshold",
    "dej_flag_settings",
    "section_flag_scores",
    "segmentation_flag_score",
    "write_uncertainty_calibration",
]

#: Manifest key of the calibration (top level, outside the weights' hash).
UNCERTAINTY_KEY = "uncertainty"
#: 0.9: about one clean section in ten gets a (false) uncertain-DEJ flag (the issue's bound).
DEFAULT_CALIBRATION_QUANTILE = 0.9
_STATISTIC = (
    "per clean section: max over x of the minimum, over min_segment_um of consecutive "
    "columns, of the excess DEJ entropy (mean normalised entropy within ±entropy_band_um "
    "of the decoded DEJ, divided by sqrt(1 + slope²), minus its median along the section)"
)


def calibration_threshold(scores, quantile: float) -> float:
    """The split-conformal threshold of clean-section flag scores, clipped to [0, 1].

    The ⌈(n + 1)·quantile⌉-th smallest of the n finite scores (Angelopoulos & Bates,
    2021, §1.1): a new exchangeable clean section scores above it with probability at
    most ``1 − quantile``. With fewer than ``quantile / (1 − quantile)`` scores that
    rank exceeds n and the largest score is used (the bound then holds only
    approximately).

    Raises
    ------
    InputError
        A quantile outside (0, 1), or no finite score.
    """
    if not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
        raise InputError(f"quantile must be in (0, 1), got {quantile!r}")
    valid = np.sort(np.asarray(scores, dtype=float).ravel())
    valid = valid[np.isfinite(valid)]
    if valid.size == 0:
        raise InputError("no finite flag score to calibrate on")
    rank = min(valid.size, math.ceil((valid.size + 1) * quantile))
    return float(np.clip(valid[rank - 1], 0.0, 1.0))


def dej_entropy_threshold(model: LayersModel | None) -> float:
    """The DEJ-entropy threshold a model's manifest holds (calibrated), else the default.

    ``None`` or a model without calibration gives
    :func:`skinoct.morphometry.default_entropy_threshold` (the bundled model's); the
    threshold of :func:`dej_flag_settings`.
    """
    return dej_flag_settings(model).threshold


class DejFlag(NamedTuple):
    """The three settings of the uncertain-DEJ flag; the threshold holds only with the other two."""

    threshold: float
    band_um: float
    min_segment_um: float


def dej_flag_settings(
    model: LayersModel | None,
    *,
    threshold: float | None = None,
    band_um: float | None = None,
    min_segment_um: float | None = None,
) -> DejFlag:
    """The uncertain-DEJ flag's settings for ``model``: its calibration, else the bundled one's.

    Each ``None`` is replaced by the value stored with the model's calibrated threshold
    (manifest key ``uncertainty``: ``dej_entropy_threshold``, ``entropy_band_um``,
    ``min_segment_um``). ``None`` or a model without calibration gives the bundled
    model's (:func:`skinoct.morphometry.default_entropy_threshold` and its siblings);
    a calibration written before the band was stored gives its band then, 5 µm.

    A band or length that differs from the calibrated one, with the calibrated
    threshold, gives a warning: the threshold then no longer means "about
    ``1 − quantile`` of clean sections flagged".

    Raises
    ------
    ModelError
        A stored threshold outside [0, 1], or a stored band or length below 0.
    """
    from skinoct.morphometry import (
        FALLBACK_ENTROPY_BAND_UM,
        FALLBACK_MIN_SEGMENT_UM,
        default_entropy_band_um,
        default_entropy_threshold,
        default_min_segment_um,
    )

    if None not in (threshold, band_um, min_segment_um):  # nothing to read from the model
        return DejFlag(float(threshold), float(band_um), float(min_segment_um))
    block = _calibration_block(model)
    if "dej_entropy_threshold" not in block:
        calibrated = DejFlag(
            default_entropy_threshold(), default_entropy_band_um(), default_min_segment_um()
        )
    else:
        try:  # a stored but unreadable threshold is an error, not the bundled one
            stored_threshold = float(block["dej_entropy_threshold"])
        except (TypeError, ValueError):
            stored_threshold = float("nan")
        if not (math.isfinite(stored_threshold) and 0 <= stored_threshold <= 1):
            raise ModelError(
                f"manifest uncertainty threshold {block['dej_entropy_threshold']!r} "
                "is not in [0, 1]"
            )
        calibrated = DejFlag(
            stored_threshold,
            # calibrations written before these were stored used the fallback values
            _stored_size(block, "entropy_band_um", FALLBACK_ENTROPY_BAND_UM),
            _stored_size(block, "min_segment_um", FALLBACK_MIN_SEGMENT_UM),
        )
    given = {"band": band_um, "minimum segment": min_segment_um}
    stored = {"band": calibrated.band_um, "minimum segment": calibrated.min_segment_um}
    changed = [k for k, v in given.items() if v is not None and not math.isclose(v, stored[k])]
    if threshold is None and changed:
        warnings.warn(
            f"the DEJ-uncertainty threshold was calibrated at a ±{calibrated.band_um:g} µm band "
            f"and a {calibrated.min_segment_um:g} µm minimum segment; flags with another "
            f"{' and '.join(changed)} are not calibrated (scripts/calibrate_layers.py "
            "recalibrates)",
            UserWarning,
            stacklevel=2,
        )
    return DejFlag(
        calibrated.threshold if threshold is None else float(threshold),
        calibrated.band_um if band_um is None else float(band_um),
        calibrated.min_segment_um if min_segment_um is None else float(min_segment_um),
    )


def _stored_size(block: dict, key: str, legacy: float) -> float:
    try:
        value = float(block.get(key, legacy))
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise ModelError(f"manifest uncertainty {key} {block.get(key)!r} is not a number >= 0")
    return value


def _flag_sizes(model, band_um, min_segment_um) -> tuple[float, float]:
    """``(band_um, min_segment_um)``: the given ones (checked), else the model's."""
    for name, value in (("band_um", band_um), ("min_segment_um", min_segment_um)):
        if value is not None and not (
            isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        ):
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    settings = dej_flag_settings(
        model, threshold=1.0, band_um=band_um, min_segment_um=min_segment_um
    )  # the threshold is not used: no warning
    return settings.band_um, settings.min_segment_um


def _calibration_block(model: LayersModel | None) -> dict:
    manifest = getattr(model, "manifest", None)  # None, or a stand-in without one
    block = manifest.get(UNCERTAINTY_KEY) if isinstance(manifest, dict) else None
    return block if isinstance(block, dict) else {}


def section_flag_scores(
    model: LayersModel,
    sections: Iterable,
    *,
    spacing_um=None,
    band_um: float | None = None,
    min_segment_um: float | None = None,
    engine: str = "torch",
    tta: bool = False,
    device: str | None = "auto",
) -> list[float]:
    """:func:`skinoct.morphometry.dej_flag_score` of each section (NaN: no DEJ found).

    Sections are segmented exactly as ``skinoct layers segment`` does (ordered
    decoding, raw entropy); see :func:`calibrate_uncertainty` for ``sections``;
    ``band_um`` and ``min_segment_um`` default to the model's calibrated ones
    (:func:`dej_flag_settings`).
    """
    band_um, min_segment_um = _flag_sizes(model, band_um, min_segment_um)
    scores = []
    for image, spacing in _iter_sections(sections, spacing_um):
        result = segment_section(
            image, model, spacing_um=spacing, engine=engine, tta=tta, device=device
        )
        _, score = segmentation_flag_score(
            result.labels, result.entropy, spacing, band_um=band_um, min_segment_um=min_segment_um
        )
        scores.append(score)
    return scores


def segmentation_flag_score(labels, entropy, spacing_um, *, band_um: float, min_segment_um: float):
    """``(metrics, score)`` of one segmented section: its
    :func:`skinoct.morphometry.measure_section` with the entropy map, and its
    :func:`skinoct.morphometry.dej_flag_score` (the highest threshold that flags it);
    ``(None, nan)`` where no skin is found. To score one segmentation at several
    settings without segmenting again.
    """
    from skinoct.morphometry import dej_flag_score, excess_dej_entropy, measure_section

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            metrics = measure_section(
                labels,
                spacing_um,
                entropy=entropy,
                entropy_band_um=band_um,
                min_segment_um=min_segment_um,
            )
    except InputError:  # no skin found: nothing to flag
        return None, float("nan")
    lateral = metrics.boundaries.lateral_spacing_um  # (dx,)
    excess = excess_dej_entropy(metrics.dej_entropy_profile, metrics.boundaries.dej, lateral)
    return metrics, dej_flag_score(excess, lateral[0], min_length_um=min_segment_um)


def calibrate_uncertainty(
    model: LayersModel | str | Path,
    sections: Iterable,
    *,
    spacing_um=None,
    quantile: float = DEFAULT_CALIBRATION_QUANTILE,
    band_um: float | None = None,
    min_segment_um: float | None = None,
    engine: str = "torch",
    tta: bool = False,
    device: str | None = "auto",
    computed_on: str = "",
) -> dict[str, Any]:
    """Calibrate the DEJ-uncertainty threshold of a model on clean (non-disrupted) sections.

    Parameters
    ----------
    model : LayersModel or str or Path
        The model (or its directory).
    sections : iterable
        Clean vertical sections: :class:`skinoct.io.Image` objects (their own spacing),
        ``(array, spacing_um)`` pairs, or 2-D arrays (then ``spacing_um`` is needed).
        Use sections like those the model will see (its validation sections, or
        phantoms for the bundled model); with fewer than ``quantile / (1 − quantile)``
        (9 at 0.9) the threshold is the largest score.
    spacing_um : (float, float), optional
        ``(dz, dx)`` of plain-array sections.
    quantile : float
        Conformal quantile of the clean sections' flag scores taken as the threshold,
        in (0, 1) (:func:`calibration_threshold`): a new clean section gets a false
        flag with probability at most ``1 − quantile``.
    band_um : float, optional
        Half-height (µm) of the DEJ band the entropy is averaged over
        (``entropy_band_um`` of :func:`skinoct.morphometry.measure_section`); stored
        with the threshold, and flagging uses it by default. Default: the model's
        current calibrated band (:func:`dej_flag_settings`).
    min_segment_um : float, optional
        Minimum flagged length, µm (as :func:`skinoct.morphometry.measure_section`);
        stored and used the same way. Default: the model's current one.
    engine, tta, device
        As :func:`segment_section`.
    computed_on : str
        A plain description of the sections (stored in the manifest).

    Returns
    -------
    dict
        ``dej_entropy_threshold``, ``quantile``, ``n_sections`` (sections with a DEJ),
        ``computed_on``, ``statistic``, ``entropy_band_um``, ``min_segment_um``,
        ``engine``, ``tta``, ``score_quantiles`` (5/50/95 %), ``date``. Store it with
        :func:`write_uncertainty_calibration`.

    Raises
    ------
    InputError
        For a quantile outside (0, 1), no sections, or no section with a DEJ.

    Examples
    --------
    >>> cal = calibrate_uncertainty(model, [(image, (1.0, 1.0))] * 20)  # doctest: +SKIP
    >>> write_uncertainty_calibration(model_dir, cal)  # doctest: +SKIP
    """
    if not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
        raise InputError(f"quantile must be in (0, 1), got {quantile!r}")
    if not isinstance(model, LayersModel):
        model = load_layers_model(model)
    band_um, min_segment_um = _flag_sizes(model, band_um, min_segment_um)
    scores = np.array(
        section_flag_scores(
            model,
            sections,
            spacing_um=spacing_um,
            band_um=band_um,
            min_segment_um=min_segment_um,
            engine=engine,
            tta=tta,
            device=device,
        ),
        dtype=float,
    )
    if scores.size == 0:
        raise InputError("calibration needs at least one section")
    valid = scores[np.isfinite(scores)]
    if valid.size == 0:
        raise InputError("no calibration section has a DEJ the model can find")
    threshold = calibration_threshold(valid, quantile)
    # Stored to 6 decimals, rounded up: rounded to nearest, a quantile that falls on a
    # calibration score could land below it and flag that section too.
    stored = math.ceil(threshold * 1e6) / 1e6  # at most 1.0: threshold is clipped
    return {
        "dej_entropy_threshold": stored,
        "quantile": float(quantile),
        "n_sections": int(valid.size),
        "computed_on": str(computed_on),
        "statistic": _STATISTIC,
        "entropy_band_um": float(band_um),
        "min_segment_um": float(min_segment_um),
        "engine": engine,
        "tta": bool(tta),
        "score_quantiles": {
            str(q): round(float(np.quantile(valid, q)), 6) for q in (0.05, 0.5, 0.95)
        },
        "weights_sha256": model.weights_sha256,
        "date": _dt.date.today().isoformat(),
    }


def write_uncertainty_calibration(model_dir: str | Path, calibration: dict[str, Any]) -> Path:
    """Store ``calibration`` under the top-level ``uncertainty`` key of ``model.json``.

    Only that key changes; the weights and their SHA-256 are untouched, so the model
    loads as before. Written atomically; the model is loaded back as a check.

    Raises
    ------
    ModelError
        Not a model directory, a calibration for other weights, or a model that no
        longer loads after the write (the old manifest is restored).
    """
    from skinoct.io import write_json

    model_dir = Path(model_dir)
    path = model_dir / "model.json" if model_dir.is_dir() else model_dir
    try:
        original = path.read_text(encoding="utf-8")
        manifest = json.loads(original)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the model manifest: {exc}", path=path) from None
    sha = calibration.get("weights_sha256")
    if sha is not None and sha != manifest.get("weights_sha256"):
        raise ModelError("the calibration was computed for other weights", path=path)
    if not 0 <= float(calibration.get("dej_entropy_threshold", -1)) <= 1:
        raise ModelError("calibration lacks a dej_entropy_threshold in [0, 1]", path=path)
    for key in ("entropy_band_um", "min_segment_um"):
        try:
            _stored_size(calibration, key, 0.0)
        except ModelError as exc:
            raise ModelError(exc.reason, path=path) from None
    manifest[UNCERTAINTY_KEY] = dict(calibration)
    write_json(path, manifest)
    try:
        load_layers_model(path.parent)
    except ModelError:
        path.write_text(original, encoding="utf-8")
        raise
    return path


def _iter_sections(sections: Iterable, spacing_um):
    from skinoct.io import Image, check_spacing

    for item in sections:
        if isinstance(item, Image):
            yield np.asarray(item.data), check_spacing(item.spacing_um, 2)
        elif isinstance(item, tuple) and len(item) == 2:
            yield np.asarray(item[0]), check_spacing(item[1], 2)
        else:
            if spacing_um is None:
                raise InputError("plain-array sections need spacing_um=(dz, dx)")
            yield np.asarray(item), check_spacing(spacing_um, 2)
