"""The ONNX export cache, keyed by the model digest and verified on every load.

Both task models run their exported (onnxruntime, OpenVINO) engines through
:class:`ExportedEngines`: the network is exported once to ``<folder>/<name>.onnx`` with
a sidecar ``<name>.onnx.json`` holding the model digest, the file's SHA-256 and the
torch network's output on a fixed probe input, recorded when the file was exported and
checked against torch. Before a cached file is used it must (1) have a sidecar naming
this model's digest and the file's current SHA-256, and (2) reproduce that recorded
output (a record that cannot be read: the torch network's, computed again). A file
that fails either — stale, corrupt, or a different network put in its place — is
exported again; a network never runs under another model's identity. An export of an
earlier :data:`~skinoct.models._graph.EXPORT_GRAPH_VERSION` (the same function in slower
ops) is exported again quietly, once.
Checking against the recorded output means a cached export runs without building the
torch network, so inference with onnxruntime never imports MONAI (≈ 0.3 GB and seconds
of start-up).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import ModelError
from skinoct.io import write_json
from skinoct.models._graph import EXPORT_GRAPH_VERSION

__all__ = ["ExportedEngines", "cache_dir", "export_location"]


def cache_dir() -> Path:
    """``$SKINOCT_CACHE_DIR``, else ``$XDG_CACHE_HOME/skinoct``, else ``~/.cache/skinoct``."""
    env = os.environ.get("SKINOCT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skinoct"


def export_location(
    model_path: Path | None, *, task: str, weights_sha256: str | None, digest: str
) -> tuple[Path | None, str | None]:
    """``(folder, stem)`` of a model's ONNX export: next to the weights
    (``model.<weights sha>-<digest>``) in a model folder one may write to; ``(None,
    None)`` — the user cache — for the bundled model, a read-only folder or an unsaved
    model."""
    from skinoct.models._artifact import bundled_model_dir

    if model_path is None or not os.access(model_path, os.W_OK):
        return None, None
    try:
        if Path(model_path).resolve() == bundled_model_dir(task).resolve():
            return None, None
    except ModelError:
        pass
    return Path(model_path), f"model.{(weights_sha256 or 'unsaved')[:16]}-{digest[:12]}"


class ExportedEngines:
    """The ONNX export of one model and the onnxruntime / OpenVINO runners on it.

    Parameters
    ----------
    task : str
        ``'layers'`` or ``'matrix'`` (prefix of cached file names).
    digest : str
        The model's identity (:func:`~skinoct.models.model_digest`, or a
        :func:`~skinoct.models.state_digest` of unsaved weights).
    export : callable
        ``export(path)`` writes the ONNX file.
    reference : callable
        ``reference(probe) -> logits`` from the torch network (float32 numpy).
    probe : ndarray
        A fixed input batch of the exported graph.
    folder : Path, optional
        Where the export lives (default: :func:`cache_dir` ``/onnx``).
    name : str, optional
        File name stem (default ``<task>-<digest[:16]>``).
    """

    def __init__(
        self,
        *,
        task: str,
        digest: str,
        export: Callable[[Path], Any],
        reference: Callable[[np.ndarray], np.ndarray],
        probe: np.ndarray,
        folder: Path | None = None,
        name: str | None = None,
    ) -> None:
        self.task = task
        self.digest = digest
        self._export = export
        self._reference = reference
        self.probe = np.ascontiguousarray(probe, dtype=np.float32)
        stem = name or f"{task}-{digest[:16]}"
        self.path = (folder if folder is not None else cache_dir() / "onnx") / f"{stem}.onnx"
        self._verified = False
        self._runners: dict[Any, Any] = {}
        self._lock = threading.Lock()

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def onnx_file(self) -> Path:
        """The verified export (exported or re-exported when needed)."""
        if self._verified and self.path.is_file():
            return self.path
        if self.path.is_file():
            meta = self._sidecar_meta()
            if meta is not None and _graph_version(meta) < EXPORT_GRAPH_VERSION:
                # made from these weights by an earlier release: valid, but slower
                self._write()
                self._verified = True
                return self.path
            if meta is not None:
                recorded = _recorded_logits(meta)
                want = recorded if recorded is not None else self._reference_probe()
                if self._reproduces(want):
                    if recorded is None:  # an unreadable record: torch's output again
                        self._write_sidecar(want)
                    self._verified = True
                    return self.path
            warnings.warn(
                f"{self.path}: cached ONNX export does not match this model; exporting it again",
                stacklevel=3,
            )
        self._write()
        self._verified = True
        return self.path

    def has_export(self) -> bool:
        """A cached export whose sidecar names this model's digest and the file's SHA-256.

        It was made from this model's weights, so they fit the network; whether the file
        still computes what it computed then is checked when a runner is made.
        """
        return self.path.is_file() and self._sidecar_meta() is not None

    def runner(self, engine: str, *, threads: int | None = None, **options):
        """An onnxruntime (``'onnx'``) or OpenVINO (``'openvino'``) runner, kept per options.

        Thread-safe: concurrent first calls export the file once.
        """
        key = (engine, threads, tuple(sorted(options.items())))
        with self._lock:  # threads segmenting batches at once: one export, one runner
            return self._runner(key, engine, threads, options)

    def _runner(self, key, engine: str, threads: int | None, options: dict):
        from skinoct.models._onnx import OnnxRunner, OpenVinoRunner
        from skinoct.models._runtime import onnxruntime_available

        if key not in self._runners:
            if engine == "onnx":
                if not onnxruntime_available():
                    raise ModelError("engine 'onnx' needs onnxruntime; install it or use 'torch'")
                self._runners[key] = OnnxRunner(self.onnx_file(), threads=threads, **options)
            elif engine == "openvino":
                self._runners[key] = OpenVinoRunner(self.onnx_file(), threads=threads, **options)
            else:
                raise ModelError(f"no exported engine {engine!r}; use 'onnx' or 'openvino'")
        return self._runners[key]

    # ------------------------------------------------------------------ internals
    def _write(self) -> None:
        self._runners.clear()
        self.sidecar.unlink(missing_ok=True)  # no window where a new file has an old sidecar
        self._export(self.path)
        want = self._reference_probe()
        if not self._reproduces(want):
            raise ModelError("the ONNX export does not reproduce the torch network", path=self.path)
        self._write_sidecar(want)

    def _reference_probe(self) -> np.ndarray:
        """The torch network's output on the probe."""
        return np.asarray(self._reference(self.probe), dtype=np.float32)

    def _write_sidecar(self, want: np.ndarray) -> None:
        from skinoct.models._artifact import sha256_file

        write_json(
            self.sidecar,
            {
                "digest": self.digest,
                "onnx_sha256": sha256_file(self.path),
                "graph_version": EXPORT_GRAPH_VERSION,
                "probe_logits": {
                    "shape": list(want.shape),
                    "float32_le_base64": base64.b64encode(want.astype("<f4").tobytes()).decode(),
                },
            },
        )

    def _sidecar_meta(self) -> dict | None:
        """The sidecar, when it names this model's digest and the file's current SHA-256."""
        from skinoct.models._artifact import sha256_file

        try:
            meta = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if (
            isinstance(meta, dict)
            and meta.get("digest") == self.digest
            and meta.get("onnx_sha256") == sha256_file(self.path)
        ):
            return meta
        return None

    def _reproduces(self, want: np.ndarray) -> bool:
        """The file computes ``want`` on the probe (float32 engine)."""
        from skinoct.models._onnx import OnnxRunner, OpenVinoRunner
        from skinoct.models._runtime import onnxruntime_available

        try:
            if onnxruntime_available():
                got = OnnxRunner(self.path, threads=1)(self.probe)
            else:
                got = OpenVinoRunner(self.path, threads=1, precision="f32")(self.probe)
        except ModelError:
            return False
        if got.shape != want.shape:
            return False
        scale = max(1.0, float(np.abs(want).max()))
        return bool(np.allclose(got, want, rtol=1e-3, atol=1e-3 * scale))


def _graph_version(meta: dict) -> int:
    """The :data:`EXPORT_GRAPH_VERSION` of a sidecar's export (1: made before it was kept)."""
    version = meta.get("graph_version", 1)
    return version if isinstance(version, int) else 1


def _recorded_logits(meta: dict) -> np.ndarray | None:
    """The probe output a sidecar recorded at export (``None``: none, or unreadable)."""
    rec = meta.get("probe_logits")
    try:
        data = base64.b64decode(rec["float32_le_base64"], validate=True)
        return np.frombuffer(data, "<f4").reshape([int(n) for n in rec["shape"]])
    except (TypeError, KeyError, ValueError):
        return None
