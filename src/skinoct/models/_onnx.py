"""ONNX export and onnxruntime inference shared by the segmentation and grading models."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from skinoct.errors import ModelError
from skinoct.io import atomic_path
from skinoct.models._graph import export_graph
from skinoct.models._runtime import default_threads

__all__ = ["OnnxRunner", "OpenVinoRunner", "export_onnx"]


def export_onnx(
    model,
    example_input,
    path: str | Path,
    *,
    dynamic_axes: dict[int, str] | None = None,
    opset_version: int = 17,
) -> Path:
    """Export a torch module with one input ``input`` and one output ``logits``.

    Uses the TorchScript-based exporter (``dynamo=False``): it handles dynamic batch
    and spatial sizes of plain convolutional networks without extra dependencies. What
    is exported is :func:`~skinoct.models._graph.export_graph` of ``model``: the same
    function in ops onnxruntime runs faster (``model`` itself is left as it is).

    Parameters
    ----------
    model : torch.nn.Module
        Exported in eval mode.
    example_input : torch.Tensor
        A tensor of the expected rank.
    path : str or Path
        Destination ``.onnx`` file (written atomically).
    dynamic_axes : dict of int to str, optional
        Axes of the input (and the output) that may vary, e.g. ``{0: "batch"}``.
    """
    import torch

    model = export_graph(model)
    axes = dynamic_axes or {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(
            model,
            (example_input,),
            str(tmp),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": axes, "logits": axes},
            opset_version=opset_version,
        )
    return Path(path)


class OnnxRunner:
    """Run an exported model with onnxruntime on the CPU.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    threads : int, optional
        Intra-op threads (default: ``OMP_NUM_THREADS`` when set, else onnxruntime's
        choice, all cores; :func:`~skinoct.models.default_threads`).
    spin : bool
        Let idle intra-op threads busy-wait for the next run (onnxruntime's default).
        ``False`` frees the cores at once, which is faster when other CPU work (torch
        pre- and post-processing) runs between calls.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, spin: bool = True) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError("ONNX file not found", path=self.path)
        options = ort.SessionOptions()
        threads = threads or default_threads()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model: {exc}", path=self.path) from exc
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 batch (N, C, H, W)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self.input_name: batch})[0]


class OpenVinoRunner:
    """Run an exported ONNX model with OpenVINO's CPU plugin (optional dependency).

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file (the same file :class:`OnnxRunner` runs).
    threads : int, optional
        Inference threads (default: ``OMP_NUM_THREADS`` when set, else OpenVINO's
        choice, all cores).
    precision : {'bf16', 'f32'}
        OpenVINO's inference precision hint. ``'bf16'`` computes in bfloat16 where the CPU
        has native support (AVX-512 BF16, AMX) and in float32 elsewhere; on the 2-core
        AVX-512 build machine it ran the grading network 1.3–1.4× faster than
        onnxruntime float32 with the same phantom accuracy (BENCHMARKS.md).
    input_type : {'f32', 'u8'}
        Element type the runner takes. ``'u8'`` adds the conversion to float32 at the
        graph's input (OpenVINO's ``PrePostProcessor``), where the plugin runs it fused
        and on every inference thread: uint8 images go in as they are, without a
        float32 copy made beforehand (same values: every uint8 is exact in float32).
    mode : {'latency', 'throughput'}
        OpenVINO's performance hint. ``'latency'`` runs a batch as one request on one
        stream using every thread (right for a few large images, such as layer
        sections). ``'throughput'`` lets OpenVINO split the threads into streams (2
        streams of 1 thread on 2 cores) and runs each batch as requests of at most
        ``request_batch`` images on those streams at once; ``predict_tiles`` at batches
        of 64 ran 1.16–1.19× faster so on the 2-core AVX-512 machine, with identical
        outputs (BENCHMARKS.md, ``benchmarks/bench_openvino_trials.py``).
    request_batch : int
        Images per request in ``'throughput'`` mode (default 16; batches of 16–32 were
        the fastest of 16–256 in the same trials).

    Raises
    ------
    ModelError
        OpenVINO is not installed, or cannot compile the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        precision: str = "bf16",
        input_type: str = "f32",
        mode: str = "latency",
        request_batch: int = 16,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ModelError(
                "openvino is not installed (pip install 'skinoct[openvino]'); "
                "use engine 'onnx' or 'torch'"
            ) from None
        if precision not in ("bf16", "f32"):
            raise ModelError(f"precision must be 'bf16' or 'f32', got {precision!r}")
        if input_type not in _INPUT_TYPES:
            raise ModelError(f"input_type must be 'f32' or 'u8', got {input_type!r}")
        if mode not in ("latency", "throughput"):
            raise ModelError(f"mode must be 'latency' or 'throughput', got {mode!r}")
        if int(request_batch) < 1:
            raise ModelError(f"request_batch must be at least 1, got {request_batch}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError("ONNX file not found", path=self.path)
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": mode.upper()}
        threads = threads or default_threads()
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            graph = core.read_model(str(self.path))
            if input_type != "f32":
                ppp = ov.preprocess.PrePostProcessor(graph)
                ppp.input(0).tensor().set_element_type(getattr(ov.Type, input_type))
                ppp.input(0).preprocess().convert_element_type(ov.Type.f32)
                graph = ppp.build()
            self.compiled = core.compile_model(graph, "CPU", config)
        except Exception as exc:  # OpenVINO raises its own exception types
            raise ModelError(f"OpenVINO cannot compile the model: {exc}", path=self.path) from exc
        self.request = self.compiled.create_infer_request()
        self.precision = precision
        self.input_type = input_type
        self.mode = mode
        self.request_batch = int(request_batch)
        #: streams OpenVINO chose (1 in 'latency' mode)
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self._queue = None
        self._lock = threading.Lock()  # one batch at a time through the request queue

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a batch (N, C, H, W) of the runner's ``input_type``."""
        batch = np.ascontiguousarray(batch, dtype=_INPUT_TYPES[self.input_type])
        if self.mode == "latency" or (self.streams == 1 and len(batch) <= self.request_batch):
            with self._lock:
                return np.array(self.request.infer({0: batch})[0], dtype=np.float32, copy=True)
        with self._lock:
            return self._run_queued(batch)

    def _run_queued(self, batch: np.ndarray) -> np.ndarray:
        import openvino as ov

        if self._queue is None:
            # twice the requests OpenVINO asks for, so that each stream has the next queued
            jobs = 2 * int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._queue = ov.AsyncInferQueue(self.compiled, max(jobs, 2))
        starts = range(0, len(batch), self.request_batch)
        parts: list = [None] * len(starts)

        def keep(request, index):
            parts[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

        self._queue.set_callback(keep)
        for index, start in enumerate(starts):
            self._queue.start_async({0: batch[start : start + self.request_batch]}, index)
        self._queue.wait_all()
        return np.concatenate(parts)


#: OpenVinoRunner input element types and their NumPy dtypes.
_INPUT_TYPES = {"f32": np.float32, "u8": np.uint8}
