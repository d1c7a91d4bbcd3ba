"""Where and how a model runs: one device resolution, one list of engines, ``auto``.

Both task models (:mod:`skinoct.layers`, :mod:`skinoct.matrix`) resolve devices and
engines here, so a name means the same thing everywhere and every error is an
:class:`~skinoct.errors.InputError`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Literal

from skinoct.errors import InputError

__all__ = [
    "ENGINES",
    "Engine",
    "cpu_has_bf16",
    "default_threads",
    "openvino_available",
    "resolve_device",
    "resolve_engine",
]

Engine = Literal["auto", "torch", "onnx", "openvino", "openvino-int8"]
#: Engines a model can run on; ``'auto'`` picks one of the others (:func:`resolve_engine`).
#: ``'openvino-int8'``: OpenVINO on an NNCF int8 quantisation of the export
#: (:class:`~skinoct.models.Int8Export`; the grading model only).
ENGINES = ("auto", "torch", "onnx", "openvino", "openvino-int8")


def resolve_device(device=None):
    """A :class:`torch.device` for ``'auto'`` / None (CUDA when available), ``'cpu'``,
    ``'cuda'`` or ``'cuda:N'`` (or a ``torch.device``).

    Raises
    ------
    InputError
        For another name, or CUDA asked for where torch sees no GPU.
    """
    import torch

    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        return torch.device(name)
    raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def openvino_available() -> bool:
    """True when :mod:`openvino` can be imported."""
    if not _importable("openvino"):
        return False
    try:
        import openvino  # noqa: F401
    except Exception:  # a broken install counts as absent
        return False
    return True


def onnxruntime_available() -> bool:
    """True when :mod:`onnxruntime` can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), from
    ``/proc/cpuinfo`` (Linux; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def default_threads() -> int | None:
    """The thread budget of this process for the exported engines, or None (all cores).

    ``OMP_NUM_THREADS`` when it is a positive integer: torch follows it, but onnxruntime
    and OpenVINO would take every core regardless, so their runners read it here. A
    study worker gets its share this way (:func:`skinoct.study.plan_workers`).
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        threads = int(value)
    except ValueError:
        return None
    return threads if threads > 0 else None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_engine(engine: str = "auto", *, task: str = "layers", device=None) -> str:
    """The concrete engine for ``engine``; ``'auto'`` = the fastest one installed here.

    ``'auto'`` never returns ``'openvino-int8'``: that one needs a model-specific agreement
    check, so the grading model chooses it itself (:meth:`skinoct.matrix.MatrixModel.engine_for`).
    ``'auto'`` picks, in order: OpenVINO when importable for grading (``task='matrix'``)
    on CPUs with native bfloat16 — AVX-512 BF16 / AMX — where it was measured 1.3–1.4×
    faster than onnxruntime (BENCHMARKS.md), then onnxruntime, then torch. The layer
    U-Net runs in float32 on OpenVINO, which segmented the default volume 1.1× slower
    than onnxruntime (BENCHMARKS.md "Studies"): ``'auto'`` gives it onnxruntime.
    With a CUDA ``device`` (or ``'auto'`` where torch sees a GPU) it is torch: the
    exported engines run on the CPU.

    Raises
    ------
    InputError
        An unknown engine name.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine != "auto":
        return engine
    if device is not None and (
        str(device).startswith("cuda") or (str(device) == "auto" and _cuda_available())
    ):
        return "torch"
    if task == "matrix" and openvino_available() and cpu_has_bf16():
        return "openvino"
    if onnxruntime_available():
        return "onnx"
    return "torch"
