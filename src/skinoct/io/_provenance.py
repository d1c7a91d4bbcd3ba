"""Say in plain words when a result comes from a model trained on phantoms only.

The bundled models were trained on synthetic LC-OCT images (``skinoct.phantom``); a
result they produce demonstrates the software, it is not a measurement validated on
skin. The flag travels in the outputs as raw JSON (``synthetic_training_data``,
``trained_on_synthetic_data``, a model manifest's ``training.synthetic_data`` or its
``provenance.training_data`` text naming phantoms);
:func:`provenance_banner` turns any of these into the sentence that the report, the
``analyze`` summary, ``layers segment``'s metrics and the CLI's closing line show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["PHANTOM_KEYS", "provenance_banner", "synthetic_models"]

#: JSON keys whose value ``true`` marks a model trained on synthetic (phantom) data.
PHANTOM_KEYS = ("synthetic_training_data", "trained_on_synthetic_data", "synthetic_data")
_TASK_WORDS = {"layers": "layer segmentation", "matrix": "dermal-matrix grading"}
_MAX_FILES = 10_000


def synthetic_models(info: Any) -> list[str]:
    """Tasks (``'layers'``, ``'matrix'``, or ``'model'`` when unnamed) of phantom-trained
    models found anywhere in ``info``.

    ``info`` is a model manifest, an analysis result, a study record, a list of
    these, or the path of a JSON file or of a study folder (its ``subjects/*.json``).
    """
    found: list[str] = []
    for item in _load(info):
        _walk(item, None, found)
    return list(dict.fromkeys(found))


def provenance_banner(info: Any) -> str | None:
    """The plain-language provenance warning for ``info``, or None if none applies.

    Parameters
    ----------
    info : dict, list, str or Path
        See :func:`synthetic_models`.

    Returns
    -------
    str or None
        A sentence naming the phantom-trained model(s) that produced the results.

    Examples
    --------
    >>> provenance_banner({"task": "layers", "training": {"synthetic_data": True}})[:40]
    'Phantom-trained model: the layer segment'
    >>> provenance_banner({"task": "layers", "training": {}}) is None
    True
    """
    tasks = synthetic_models(info)
    if not tasks:
        return None
    named = [_TASK_WORDS[t] for t in tasks if t in _TASK_WORDS]
    if named:
        what = f"the {' and '.join(named)} model{'s' if len(named) > 1 else ''}"
    else:
        what = "a model"
    plural = len(named) > 1
    return (
        f"Phantom-trained model{'s' if plural else ''}: {what} that produced these results "
        f"{'were' if plural else 'was'} trained on synthetic LC-OCT phantom images only "
        "(like the models bundled with skinoct). The results show what the software does; "
        "they are not validated on real skin and are not clinical measurements."
    )


def _walk(obj: Any, task: str | None, found: list[str]) -> None:
    if isinstance(obj, dict):
        own = obj.get("task")
        task = own if isinstance(own, str) else task
        for key, value in obj.items():
            if (key in PHANTOM_KEYS and value is True) or (
                key == "provenance" and isinstance(value, dict) and _says_phantom(value)
            ):
                found.append(task if task in _TASK_WORDS else "model")
            elif key in ("layers_model", "matrix_model"):  # analysis results name the role
                _walk(value, key.split("_")[0], found)
            else:
                _walk(value, task, found)
    elif isinstance(obj, list):
        for value in obj:
            _walk(value, task, found)


def _says_phantom(provenance: dict) -> bool:
    # a model manifest's free-text provenance ("synthetic phantom tiles: …")
    return "phantom" in json.dumps(provenance.get("training_data", "")).lower()


def _load(info: Any) -> list[Any]:
    if not isinstance(info, (str, Path)):
        return [info]
    path = Path(info)
    files = [path] if path.is_file() else sorted((path / "subjects").glob("*.json"))[:_MAX_FILES]
    out = []
    for f in files:
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # an unreadable record says nothing about provenance
    return out
