"""Save and load model artifacts (``model.safetensors`` + ``model.json``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinoct._version import __version__
from skinoct.errors import ModelError
from skinoct.io import atomic_path, write_json

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "WEIGHTS_NAME",
    "Artifact",
    "bundled_model_dir",
    "load_artifact",
    "save_artifact",
    "sha256_file",
]

WEIGHTS_NAME = "model.safetensors"
MANIFEST_NAME = "model.json"
#: Value of the manifest's ``format`` key; anything else is not a skinoct model.
FORMAT = "skinoct-model/1"


@dataclass(frozen=True)
class Artifact:
    """A loaded model artifact.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        The weights.
    manifest : dict
        Everything else: ``task`` ('layers' or 'matrix'), ``architecture`` with its
        arguments, ``classes``, preprocessing, training configuration, scores,
        provenance.
    path : Path
        The model directory.
    manifest_sha256 : str
        SHA-256 of the ``model.json`` bytes (with the weights' SHA-256 it makes the
        model's identity, :func:`~skinoct.models.model_digest`).
    """

    state_dict: dict[str, Any] = field(repr=False)
    manifest: dict[str, Any]
    path: Path
    manifest_sha256: str | None = None

    @property
    def digest(self) -> str | None:
        """SHA-256 of the weights and the manifest together."""
        from skinoct.models._provenance import model_digest

        return model_digest(self.manifest.get("weights_sha256"), self.manifest_sha256)


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file.

    ``hashlib.file_digest`` reads into one reused buffer: no fresh block (an mmap and
    its page faults) per MiB, which slowed threads allocating beside a background hash.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_artifact(model_dir: str | Path, state_dict, manifest: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (with the weights' SHA-256).

    The manifest must hold ``task`` and ``architecture``; ``format``,
    ``skinoct_version``, ``weights_file`` and ``weights_sha256`` are filled in.
    Both files are written atomically, weights first, so a directory never pairs a
    manifest with weights it does not describe.

    Returns
    -------
    Path
        ``model_dir``.
    """
    from safetensors.torch import save_file

    for key in ("task", "architecture"):
        if key not in manifest:
            raise ValueError(f"manifest needs a {key!r} entry")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    weights = model_dir / WEIGHTS_NAME
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    full = {
        "format": FORMAT,
        **manifest,
        "skinoct_version": manifest.get("skinoct_version", __version__),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": sha256_file(weights),
    }
    write_json(model_dir / MANIFEST_NAME, full)
    return model_dir


def load_artifact(model_dir: str | Path, *, task: str | None = None) -> Artifact:
    """Load and verify a model directory (or its ``model.json``).

    Parameters
    ----------
    model_dir : str or Path
        Folder holding ``model.json`` and ``model.safetensors``.
    task : {'layers', 'matrix'}, optional
        Refuse a model made for another task.

    Raises
    ------
    ModelError
        Missing files, a manifest that is not a skinoct model, a model of another
        task, a manifest that fails the schema (:mod:`skinoct.models._schema`),
        weights whose SHA-256 differs from the manifest (tampered or corrupt), or
        weights holding NaN or infinite values.
    """
    from skinoct.models._schema import read_manifest, validate_manifest

    model_dir = Path(model_dir)
    if model_dir.is_file() and model_dir.name == MANIFEST_NAME:
        model_dir = model_dir.parent
    manifest_path = model_dir / MANIFEST_NAME
    if not model_dir.exists():
        raise ModelError("model directory not found", path=model_dir)
    if not manifest_path.is_file():
        raise ModelError(f"not a skinoct model: no {MANIFEST_NAME}", path=model_dir)
    manifest, raw = read_manifest(manifest_path)
    if manifest.get("format") != FORMAT:
        raise ModelError(
            f"not a skinoct model: manifest format is not {FORMAT!r}", path=manifest_path
        )
    if task is not None and manifest.get("task") != task:
        raise ModelError(
            f"this is a {manifest.get('task')!r} model; a {task!r} model is needed", path=model_dir
        )
    validate_manifest(manifest, path=manifest_path)
    weights = model_dir / manifest["weights_file"]
    if not weights.is_file():
        raise ModelError(f"weights file {weights.name} is missing", path=model_dir)
    if manifest["weights_sha256"] != sha256_file(weights):
        raise ModelError(
            "weights do not match the manifest's SHA-256 (file tampered or corrupt)", path=weights
        )
    state_dict = _read_weights(weights)
    return Artifact(
        state_dict=state_dict,
        manifest=manifest,
        path=model_dir,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
    )


def _read_weights(weights: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; refuse NaN or infinite values."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state_dict = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot read weights: {exc}", path=weights) from exc
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ModelError(
            f"weights hold NaN or infinite values ({len(bad)} tensors, e.g. {bad[0]!r})",
            path=weights,
        )
    return state_dict


def bundled_model_dir(task: str) -> Path:
    """Folder of the bundled phantom-trained default model for ``task``.

    Raises
    ------
    ModelError
        If the package was installed without that model.
    """
    path = Path(__file__).parent / "bundled" / task
    if not (path / MANIFEST_NAME).is_file():
        raise ModelError(f"no bundled {task!r} model in this installation", path=path)
    return path
