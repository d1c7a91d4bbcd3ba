"""What a result can say about the model that produced it: identity and training data.

:func:`model_provenance` is the one place that reads a model's provenance; writers
(segmentation outputs, the analysis summary, study tables, reports) record the dict it
returns. The fingerprint is the SHA-256 of the weights *and* of the manifest
(``model_digest``), so an edited ``model.json`` (another spacing, class set or
dropout) is told apart from the original even though the weights are the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["model_digest", "model_provenance", "state_digest", "trained_on_synthetic"]


def model_digest(weights_sha256: str | None, manifest_sha256: str | None) -> str | None:
    """SHA-256 of ``"<weights sha256>:<manifest sha256>"``: one model's identity."""
    if not weights_sha256 or not manifest_sha256:
        return None
    return hashlib.sha256(f"{weights_sha256}:{manifest_sha256}".encode()).hexdigest()


def state_digest(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state dict (unsaved models)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        t = torch.as_tensor(state_dict[key]).detach().cpu().contiguous()
        digest.update(f"{key}|{tuple(t.shape)}|{t.dtype}|".encode())
        # reshape(-1): a 0-d tensor (BatchNorm's num_batches_tracked) has no byte view
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def trained_on_synthetic(manifest: Mapping[str, Any]) -> bool:
    """True when the manifest says the model saw synthetic (phantom) data only.

    Reads the explicit flags ``training.synthetic_data`` and ``provenance.synthetic_data``
    and, for manifests written before the flag existed (the bundled grading model), the
    ``provenance.training_data`` description.
    """
    training = manifest.get("training")
    provenance = manifest.get("provenance")
    for section in (training, provenance):
        if isinstance(section, Mapping) and isinstance(section.get("synthetic_data"), bool):
            return section["synthetic_data"]
    if isinstance(provenance, Mapping):
        text = str(provenance.get("training_data", "")).lower()
        return "synthetic" in text or "phantom" in text
    return False


def model_provenance(model=None, *, task: str | None = None, engine: str | None = None) -> dict:
    """Identity and provenance of a model, as a plain JSON-ready dict.

    Parameters
    ----------
    model : LayersModel, MatrixModel, str, Path or None
        A loaded model, a model directory (or its ``model.json``, read without loading
        the weights), or None for the bundled model of ``task``.
    task : {'layers', 'matrix'}, optional
        Needed with ``model=None``.
    engine : str, optional
        The engine that ran it (recorded as given, e.g. what ``'auto'`` resolved to).

    Returns
    -------
    dict
        ``task``, ``path``, ``weights_sha256``, ``manifest_sha256``, ``model_digest``
        (SHA-256 of both), ``skinoct_version``, ``trained_on_synthetic``, ``notice``
        and, when given, ``engine``.

    Raises
    ------
    ModelError
        A directory that holds no readable manifest.
    """
    if model is None or isinstance(model, (str, Path)):
        manifest, manifest_sha, path = _read(model, task)
    else:
        manifest = dict(getattr(model, "manifest", {}) or {})
        manifest_sha = getattr(model, "manifest_sha256", None)
        path = getattr(model, "path", None)
    weights = manifest.get("weights_sha256")
    out = {
        "task": manifest.get("task", task),
        "path": None if path is None else str(path),
        "weights_sha256": weights,
        "manifest_sha256": manifest_sha,
        "model_digest": model_digest(weights, manifest_sha),
        "skinoct_version": manifest.get("skinoct_version"),
        "trained_on_synthetic": trained_on_synthetic(manifest),
        "notice": manifest.get("notice"),
    }
    if engine is not None:
        out["engine"] = engine
    return out


def _read(model, task):
    from skinoct.models._artifact import MANIFEST_NAME, bundled_model_dir
    from skinoct.models._schema import read_manifest

    if model is None:
        if task is None:
            raise ValueError("give a model or the task of the bundled model")
        folder = bundled_model_dir(task)
    else:
        folder = Path(model)
        if folder.name == MANIFEST_NAME and not folder.is_dir():
            folder = folder.parent
    manifest, raw = read_manifest(folder / MANIFEST_NAME)
    return manifest, hashlib.sha256(raw).hexdigest(), folder
