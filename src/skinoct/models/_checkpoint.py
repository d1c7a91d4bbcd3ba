"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is two files, ``<name>.safetensors`` (every tensor: weights, optimizer
moments, best weights) and ``<name>.json`` (epoch, history, scheduler and early-stopping
state, the optimizer's non-tensor state, the configuration, and the SHA-256 of the
tensor file). Nested state (an optimizer's ``state_dict``) is flattened: each tensor is
replaced in the JSON by ``{"__tensor__": key}``; dictionaries with non-string keys
(optimizer state is keyed by parameter index) are stored as ``{"__items__": [[k, v], …]}``
so that the keys come back with their type. The tensor file is written first and the
JSON names its digest, so a pair from two different saves is detected on load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from skinoct.errors import InputError
from skinoct.io import atomic_path, write_json
from skinoct.models._artifact import sha256_file

__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "load_checkpoint",
    "remove_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint"
_FORMAT = "skinoct-checkpoint/1"


class Checkpoint(dict):
    """The restored state: a plain dict (``json`` part with tensors put back)."""


def _flatten(obj: Any, prefix: str, tensors: dict[str, Any]) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}
        return {
            "__items__": [[k, _flatten(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]
        }
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint ({prefix})")


def _restore(obj: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        if set(obj) == {"__items__"}:
            return {k: _restore(v, tensors) for k, v in obj["__items__"]}
        return {k: _restore(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v, tensors) for v in obj]
    return obj


def save_checkpoint(
    folder: str | Path, state: dict[str, Any], *, name: str = CHECKPOINT_NAME
) -> Path:
    """Write ``state`` (nested dicts/lists of JSON values and tensors) atomically.

    Returns
    -------
    Path
        The JSON file.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    flat = _flatten(state, "", tensors)
    weights = folder / f"{name}.safetensors"
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    target = folder / f"{name}.json"
    write_json(target, {"format": _FORMAT, "tensors_sha256": sha256_file(weights), "state": flat})
    return target


def load_checkpoint(folder: str | Path, *, name: str = CHECKPOINT_NAME) -> Checkpoint | None:
    """Read a checkpoint written by :func:`save_checkpoint`; ``None`` when there is none.

    Raises
    ------
    InputError
        A checkpoint that is unreadable or whose two files do not belong together.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ok = isinstance(meta, dict) and meta.get("format") == _FORMAT
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        ok = False
    if not ok or not weights.is_file() or sha256_file(weights) != meta.get("tensors_sha256"):
        raise InputError(
            "checkpoint is incomplete or corrupt; train without resuming", path=meta_path
        )
    tensors = load_file(str(weights))
    return Checkpoint(_restore(meta["state"], tensors))


def remove_checkpoint(folder: str | Path, *, name: str = CHECKPOINT_NAME) -> None:
    """Delete both files of a checkpoint (missing files are fine)."""
    for suffix in (".json", ".safetensors"):
        (Path(folder) / f"{name}{suffix}").unlink(missing_ok=True)
