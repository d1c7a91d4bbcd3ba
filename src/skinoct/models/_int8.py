"""OpenVINO int8 of a model's ONNX export: NNCF post-training quantisation, cached, verified.

The int8 model is quantised from the verified float32 export of
:class:`~skinoct.models.ExportedEngines` with NNCF's post-training quantisation
(``nncf.quantize``: min–max / percentile ranges from calibration batches, fast bias
correction; https://github.com/openvinotoolkit/nncf) and saved beside it as
``<stem>.int8.xml`` / ``.bin`` with a sidecar ``<stem>.int8.xml.json`` holding the model
digest, the SHA-256 of the float32 file it came from and of both IR files, the logits
of the fixed probe, and the outcome of an agreement check against float32 on held-out
inputs, with the throughput of the int8 model and of the float engine ``'auto'`` runs
otherwise, on those inputs on this CPU (``'auto'`` takes int8 only where it is at least
5 % faster: on a CPU with bfloat16, OpenVINO's bf16 beats it). A cached int8 model is
used only when the sidecar names this model's digest and this float32 export, the
files' hashes match, and it reproduces its recorded probe logits; otherwise it is
quantised again. Quantising needs ``nncf`` (extra ``skinoct[openvino]``); running it
needs only ``openvino``.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import ModelError
from skinoct.io import atomic_path, write_json

__all__ = ["INT8_ENGINE", "Int8Export", "agreement_check", "nncf_available"]

#: The engine name of the OpenVINO int8 model.
INT8_ENGINE = "openvino-int8"
#: Fewest held-out inputs with the same class as float32 for the int8 model to pass.
MIN_AGREEMENT = 0.97
#: Largest accuracy loss (fraction) against float32 on held-out labelled inputs.
MAX_ACCURACY_LOSS = 0.005


def nncf_available() -> bool:
    """True when :mod:`nncf` (needed to quantise, not to run) can be found."""
    try:
        return importlib.util.find_spec("nncf") is not None
    except (ImportError, ValueError):
        return False


class Int8Export:
    """The NNCF int8 model of one :class:`~skinoct.models.ExportedEngines` export.

    Parameters
    ----------
    engines : ExportedEngines
        The float32 export (its digest, probe and folder are reused).
    calibration : callable
        ``calibration() -> ndarray`` float32 batch of inputs of the exported graph
        (a few hundred realistic inputs; seeded, so quantisation is reproducible).
    validation : callable
        ``validation() -> (inputs, labels or None)``: held-out inputs for the
        agreement check (labels: class indices, for the accuracy check).
    """

    def __init__(
        self,
        engines,
        *,
        calibration: Callable[[], np.ndarray],
        validation: Callable[[], tuple[np.ndarray, np.ndarray | None]],
    ) -> None:
        self.engines = engines
        self._calibration = calibration
        self._validation = validation
        self.path = engines.path.with_name(engines.path.stem + ".int8.xml")
        self._verified: dict[str, Any] | None = None
        self._runners: dict[Any, Any] = {}

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def weights(self) -> Path:
        return self.path.with_suffix(".bin")

    def cached_check(self) -> dict[str, Any] | None:
        """The agreement check of a verified cached int8 model, or None (never quantises)."""
        if self._verified is None and self.path.is_file() and self._sidecar_ok():
            if self._reproduces():
                self._verified = self._meta()
        return None if self._verified is None else dict(self._verified["check"])

    def check(self) -> dict[str, Any]:
        """The agreement check (``agreement``, ``accuracy_f32``, ``accuracy_int8``, ``n``,
        ``passed``; with the speeds ``int8_per_s``, ``float_engine``, ``float_per_s``,
        ``faster``), quantising first when no verified cached model exists."""
        cached = self.cached_check()
        if cached is not None:
            return cached
        if self.path.is_file():
            warnings.warn(
                f"{self.path}: cached int8 model does not match this model; quantising again",
                stacklevel=3,
            )
        self._quantize()
        if not self._reproduces():
            raise ModelError("the saved int8 model does not reproduce itself", path=self.path)
        self._verified = self._meta()
        return dict(self._verified["check"])

    def runner(self, *, threads: int | None = None):
        """An :class:`~skinoct.models.OpenVinoRunner` of the int8 model (quantised on first
        use; raises :class:`ModelError` when it failed its agreement check)."""
        check = self.check()
        if not check["passed"]:
            raise ModelError(
                f"the int8 model failed its agreement check against float32 (same class for "
                f"{check['agreement']:.3f} of {check['n']} held-out inputs, accuracy "
                f"{check['accuracy_int8']} vs {check['accuracy_f32']}); use engine 'onnx' "
                f"or 'openvino'",
                path=self.path,
            )
        return self._runner(threads)

    # ------------------------------------------------------------------ internals
    def _runner(self, threads):
        from skinoct.models._onnx import OpenVinoRunner

        if threads not in self._runners:
            self._runners[threads] = OpenVinoRunner(
                self.path, threads=threads, precision="f32", mode="throughput"
            )
        return self._runners[threads]

    def _meta(self) -> dict[str, Any]:
        return json.loads(self.sidecar.read_text(encoding="utf-8"))

    def _sidecar_ok(self) -> bool:
        from skinoct.models._artifact import sha256_file

        try:
            meta = self._meta()
            return (
                meta.get("digest") == self.engines.digest
                and meta.get("onnx_sha256") == sha256_file(self.engines.onnx_file())
                and meta.get("xml_sha256") == sha256_file(self.path)
                and meta.get("bin_sha256") == sha256_file(self.weights)
                and isinstance(meta.get("check"), dict)
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return False

    def _speed(self, inputs: np.ndarray) -> dict[str, Any]:
        """Inputs per second of the int8 model and of the float engine ``'auto'`` would
        run otherwise (:func:`~skinoct.models.resolve_engine`), timed alternately.

        ``faster`` asks for a 5 % lead, so that timing noise does not pick int8.
        """
        from skinoct.models._runtime import resolve_engine

        fallback = resolve_engine("auto", task=self.engines.task)
        runners = {"int8": self._runner(None)}
        if fallback in ("onnx", "openvino"):
            runners[fallback] = self.engines.runner(fallback)
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():
            run(inputs)  # warm-up at the timed shape
        for _ in range(3):
            for name, run in runners.items():
                start = time.perf_counter()
                run(inputs)
                times[name].append(time.perf_counter() - start)
        rate = {name: len(inputs) / float(np.median(t)) for name, t in times.items()}
        float_rate = rate.get(fallback)  # None: torch, not timed here; int8 is not preferred
        return {
            "int8_per_s": round(rate["int8"], 1),
            "float_engine": fallback,
            "float_per_s": None if float_rate is None else round(float_rate, 1),
            "faster": bool(float_rate is not None and rate["int8"] > 1.05 * float_rate),
        }

    def _reproduces(self) -> bool:
        """The file computes the probe logits recorded when it was quantised (to 5 % of
        their span: int8 kernels differ slightly between CPU instruction sets)."""
        try:
            want = np.asarray(self._meta()["probe_logits"], dtype=np.float32)
            self._runners.clear()
            got = self._runner(1)(self.engines.probe)
        except (ModelError, OSError, KeyError, ValueError, json.JSONDecodeError):
            return False
        scale = max(1.0, float(np.abs(want).max()))
        return got.shape == want.shape and bool(np.allclose(got, want, rtol=0, atol=0.05 * scale))

    def _quantize(self) -> None:
        if not nncf_available():
            raise ModelError(
                "engine 'openvino-int8' needs nncf to quantise the model "
                "(pip install 'skinoct[openvino]'); use 'onnx' or 'openvino'"
            )
        import nncf
        import openvino as ov

        from skinoct.models._artifact import sha256_file
        from skinoct.models._onnx import OnnxRunner

        onnx_file = self.engines.onnx_file()
        calibration = np.ascontiguousarray(self._calibration(), dtype=np.float32)
        network = ov.Core().read_model(str(onnx_file))
        dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(network, dataset, subset_size=len(calibration))
        self._runners.clear()
        self.sidecar.unlink(missing_ok=True)
        with atomic_path(self.weights) as tmp_bin, atomic_path(self.path) as tmp_xml:
            ov.save_model(quantized, str(tmp_xml))
            Path(tmp_xml).with_suffix(".bin").replace(tmp_bin)
        inputs, labels = self._validation()
        f32 = OnnxRunner(onnx_file)(inputs)
        int8 = self._runner(None)(inputs)
        check = agreement_check(f32, int8, labels)
        check.update(self._speed(inputs))
        write_json(
            self.sidecar,
            {
                "digest": self.engines.digest,
                "onnx_sha256": sha256_file(onnx_file),
                "xml_sha256": sha256_file(self.path),
                "bin_sha256": sha256_file(self.weights),
                "method": f"nncf {nncf.__version__} quantize, {len(calibration)} inputs",
                "probe_logits": self._runner(1)(self.engines.probe).tolist(),
                "check": check,
            },
        )


def agreement_check(f32: np.ndarray, int8: np.ndarray, labels=None) -> dict[str, Any]:
    """Same-class fraction of two sets of logits and, with labels, both accuracies;
    ``passed`` when the int8 model agrees on ≥ 97 % and loses ≤ 0.5 points."""
    agreement = float((f32.argmax(1) == int8.argmax(1)).mean())
    out: dict[str, Any] = {"n": len(f32), "agreement": round(agreement, 4)}
    passed = agreement >= MIN_AGREEMENT
    if labels is not None:
        labels = np.asarray(labels)
        out["accuracy_f32"] = round(float((f32.argmax(1) == labels).mean()), 4)
        out["accuracy_int8"] = round(float((int8.argmax(1) == labels).mean()), 4)
        passed = passed and out["accuracy_int8"] >= out["accuracy_f32"] - MAX_ACCURACY_LOSS
    else:
        out["accuracy_f32"] = out["accuracy_int8"] = None
    out["passed"] = bool(passed)
    return out
