"""The two models of an analysis: loading (cached per process), identity, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skinoct.errors import InputError

__all__ = ["load_models", "model_fingerprint", "model_info"]


def model_info(model, kind: str) -> dict[str, Any]:
    manifest = getattr(model, "manifest", {}) or {}
    return {
        "task": kind,
        "path": None if getattr(model, "path", None) is None else str(model.path),
        "weights_sha256": manifest.get("weights_sha256"),
        "skinoct_version": manifest.get("skinoct_version"),
        "synthetic_training_data": bool(
            (manifest.get("training") or {}).get("synthetic_data")
            or "phantom" in json.dumps(manifest.get("provenance", "")).lower()
        ),
    }


def model_fingerprint(
    *, layers_model=None, matrix_model=None, engine: str | None = "auto", **_ignored
) -> dict[str, Any]:
    """Identity of the models :func:`analyze_volume` would use: their weights' SHA-256.

    Read from the model manifests (``model.json``) without loading the weights; the
    bundled models when ``None``. Unless ``engine`` is None, also ``engines``: what the
    analysis option ``engine`` (default ``'auto'``, as in :class:`AnalysisOptions`)
    resolves to on this machine
    (:func:`skinoct.models.resolve_engine`), so that a study resumed where another
    engine would run recomputes its subjects instead of mixing engines. Used by
    :func:`skinoct.study.run_study` so that a study re-run with other models recomputes
    every subject.
    """
    from skinoct.models import MANIFEST_NAME, bundled_model_dir, resolve_engine

    out: dict[str, Any] = {}
    if engine is not None:
        out["engines"] = {
            task: resolve_engine(engine, task=task, device="cpu") for task in ("layers", "matrix")
        }
    for kind, given in (("layers", layers_model), ("matrix", matrix_model)):
        if given is not None and not isinstance(given, (str, Path)):
            out[kind] = getattr(given, "manifest", {}).get("weights_sha256")
            continue
        try:
            folder = bundled_model_dir(kind) if given is None else Path(given)
            if folder.is_file():
                folder = folder.parent
            manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
            out[kind] = manifest.get("weights_sha256")
        except (OSError, ValueError, InputError):
            out[kind] = None  # the analysis itself reports the missing model
    return out


_MODELS: dict[tuple[str, str], Any] = {}


def load_models(layers_model, matrix_model):
    """Load (or reuse, within this process) the two models; bundled ones for None.

    A study worker analyses many volumes: each model directory is loaded and its
    SHA-256 verified once per process, and again if its manifest changes.
    """
    from skinoct.layers import LayersModel, load_layers_model
    from skinoct.matrix import MatrixModel, load_matrix_model

    def cached(kind, given, cls, loader):
        if isinstance(given, cls):
            return given
        key = (kind, str(Path(given).resolve()) if given is not None else "<bundled>")
        stamp = model_fingerprint(**{f"{kind}_model": given}, engine=None).get(kind)
        hit = _MODELS.get(key)
        if hit is None or hit[0] != stamp or stamp is None:
            _MODELS[key] = (stamp, loader(given))
        return _MODELS[key][1]

    return (
        cached("layers", layers_model, LayersModel, load_layers_model),
        cached("matrix", matrix_model, MatrixModel, load_matrix_model),
    )
