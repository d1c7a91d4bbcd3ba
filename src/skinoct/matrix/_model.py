"""Grading model: preprocessing, artifact save/load, prediction (torch or onnxruntime)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skinoct.errors import InputError, ModelError
from skinoct.matrix._labels import GRADES
from skinoct.models import (
    ENGINES,
    INT8_ENGINE,
    Engine,
    ExportedEngines,
    export_location,
    model_digest,
    model_provenance,
    state_digest,
    trained_on_synthetic,
)

__all__ = [
    "ENGINES",
    "NORMALIZATIONS",
    "MatrixModel",
    "Preprocessing",
    "expected_grade",
    "load_matrix_model",
    "predict_tiles",
    "preprocess_tiles",
    "save_matrix_model",
]

TASK = "matrix"
Normalization = Literal["tile", "imagenet", "paper"]
NORMALIZATIONS = ("tile", "imagenet", "paper")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How tiles become network input; stored in the model manifest.

    Tiles are RGB = en-face slices at z−1 µm, z, z+1 µm, on the 0–255 scale
    (uint8 PNG tiles or ``extract_tiles`` output). They are resized to
    ``input_size`` (bilinear, antialiased) and then normalised:

    - ``'tile'`` (skinoct default): each tile minus its mean, divided by its
      standard deviation (one value each over the three channels, so the
      differences between the slices are kept). Makes grades insensitive to
      gain and to the depth-dependent signal attenuation.
    - ``'imagenet'``: ``(x/255 − mean) / std`` per channel with ImageNet statistics
      (torchvision's convention for its pretrained weights).
    - ``'paper'``: ``x/127.5 − 1``, the ``Rescaling`` layer built into Keras'
      MobileNetV3 and hence what the paper's model saw.
    """

    input_size: int = 224
    normalization: Normalization = "tile"
    channels: tuple[str, ...] = ("z-1um", "z", "z+1um")

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise InputError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if not 32 <= int(self.input_size) <= 1024:
            raise InputError(f"input_size must be 32–1024 px, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "input_size": int(self.input_size),
            "normalization": self.normalization,
            "channels": list(self.channels),
            "value_range": [0, 255],
            "resize": "bilinear, antialiased",
        }
        if self.normalization == "imagenet":
            out.update(mean=list(_IMAGENET_MEAN), std=list(_IMAGENET_STD))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=int(data.get("input_size", 224)),
            normalization=data.get("normalization", "tile"),
            channels=tuple(data.get("channels", ("z-1um", "z", "z+1um"))),
        )


def _check_tiles(tiles) -> np.ndarray:
    array = np.asarray(tiles)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1] != 3:
        raise InputError(f"tiles must be an array (N, 3, H, W), got shape {array.shape}")
    if array.dtype.kind not in "uif":
        raise InputError(f"tiles must be numeric, got dtype {array.dtype}")
    if min(array.shape[2:]) < 8:
        raise InputError(f"tiles are too small: {array.shape[2:]} px")
    return array


def preprocess_tiles(tiles, preprocessing: Preprocessing, *, device=None, normalize: bool = True):
    """Tiles (N, 3, H, W) on the 0–255 scale → float32 torch tensor for the network.

    Resizes to ``preprocessing.input_size`` when needed and, with ``normalize``,
    applies the model's normalisation (the ONNX export does that inside the graph).

    Raises
    ------
    InputError
        Wrong shape or dtype, or NaN/infinite values.
    """
    import torch
    import torch.nn.functional as F

    array = _check_tiles(tiles)
    x = torch.as_tensor(np.ascontiguousarray(array), device=device)
    if x.dtype.is_floating_point and not torch.isfinite(x).all():
        raise InputError("tiles hold NaN or infinite values")
    x = x.float()
    size = int(preprocessing.input_size)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return normalize_batch(x, preprocessing.normalization) if normalize else x


def normalize_batch(x, normalization: str):
    """Apply the named normalisation to a float tensor (N, 3, H, W) on 0–255."""
    import torch

    if normalization == "tile":
        std, mean = torch.std_mean(x, dim=(1, 2, 3), keepdim=True)
        return (x - mean) / std.clamp_min(1e-3)
    if normalization == "imagenet":
        mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std
    if normalization == "paper":
        return x / 127.5 - 1.0
    raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


class MatrixModel:
    """A loaded grading model.

    Parameters
    ----------
    network : MatrixNet or callable
        The torch module, or a function that builds it (on first use of
        :attr:`network`: a model that runs on an exported engine never builds it).
    preprocessing : Preprocessing
    classes : tuple of int
        Grade of each output (1, 2, 3, 4).
    manifest : dict
        The model's ``model.json``.
    path : Path or None
        Where it was loaded from.
    manifest_sha256 : str or None
    device : str, optional
        Where a built network lives (default: that of ``network``, or ``'cpu'``).
    """

    def __init__(
        self,
        network,
        preprocessing: Preprocessing,
        classes: tuple[int, ...] = GRADES,
        manifest: dict | None = None,
        path: Path | None = None,
        manifest_sha256: str | None = None,
        *,
        device: str | None = None,
    ) -> None:
        import torch

        if isinstance(network, torch.nn.Module):
            self._network, self._build = network, None
            device = device or str(next(network.parameters()).device)
        elif callable(network):
            self._network, self._build = None, network
        else:
            raise TypeError(f"network must be a torch module or a builder, got {type(network)}")
        self.device = str(device or "cpu")
        self.preprocessing = preprocessing
        self.classes = tuple(classes)
        self.manifest = dict(manifest or {})
        self.path = path
        self.manifest_sha256 = manifest_sha256
        self._engines: Any = None
        self._int8: Any = None

    @property
    def network(self):
        """The torch module (MatrixNet), in eval mode on :attr:`device`; built on first use."""
        if self._network is None:
            self._network = self._build()
        return self._network

    def __repr__(self) -> str:
        return (
            f"MatrixModel(preprocessing={self.preprocessing!r}, classes={self.classes}, "
            f"path={self.path!r})"
        )

    @property
    def is_synthetic(self) -> bool:
        """True when the manifest says the model saw phantom data only."""
        return trained_on_synthetic(self.manifest)

    def provenance(self, *, engine: str | None = None) -> dict[str, Any]:
        """Identity and provenance for outputs (:func:`skinoct.models.model_provenance`)."""
        return model_provenance(self, engine=engine)

    def onnx_runner(self, *, threads: int | None = None):
        """An :class:`~skinoct.models.OnnxRunner` of this model (export cached, verified)."""
        return self._exported().runner("onnx", threads=threads)

    def openvino_runner(self, *, threads: int | None = None, input_type: str = "f32"):
        """An :class:`~skinoct.models.OpenVinoRunner` (bfloat16 where the CPU has it;
        ``input_type="u8"`` takes uint8 tiles as they are) in ``'throughput'`` mode: a
        batch of tiles runs as requests of 16 on OpenVINO's streams at once."""
        options = {"mode": "throughput"}
        if input_type != "f32":
            options["input_type"] = input_type
        return self._exported().runner("openvino", threads=threads, **options)

    def onnx_path(self) -> Path:
        """Where the verified ONNX export of this model is kept."""
        return self._exported().path

    def int8(self):
        """The :class:`~skinoct.models.Int8Export` of this model (NNCF int8, cached beside
        the ONNX export; made by :func:`~skinoct.matrix.quantize_int8`)."""
        if self._int8 is None:
            from skinoct.matrix._quantize import int8_export

            self._int8 = int8_export(self)
        return self._int8

    def engine_for(self, engine: str = "auto") -> str:
        """The engine :func:`predict_tiles` runs for ``engine`` (``'auto'`` resolved; record
        it in outputs' provenance)."""
        from skinoct.matrix._quantize import grading_engine

        return grading_engine(engine, self, device=self.device)

    def _exported(self) -> ExportedEngines:
        if self._engines is None:
            weights_sha = self.manifest.get("weights_sha256")
            digest = model_digest(weights_sha, self.manifest_sha256) or state_digest(
                self.network.state_dict()
            )
            folder, name = export_location(
                self.path, task=TASK, weights_sha256=weights_sha, digest=digest
            )
            size = int(self.preprocessing.input_size)
            probe = np.random.default_rng(0).uniform(0, 255, (1, 3, size, size))
            self._engines = ExportedEngines(
                task=TASK,
                digest=digest,
                export=lambda path: export_matrix_onnx(self, path),
                reference=self._reference_logits,
                probe=probe.astype(np.float32),
                folder=folder,
                name=name,
            )
        return self._engines

    def _reference_logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            x = normalize_batch(x, self.preprocessing.normalization)
            return self.network.eval()(x).float().cpu().numpy()


class _Preprocessed:
    """Wraps the network so that the ONNX graph takes tiles on the 0–255 scale."""

    def __new__(cls, network, normalization: str):
        import torch.nn as nn

        class Graded(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.network = network

            def forward(self, x):
                return self.network(normalize_batch(x, normalization))

        return Graded()


def export_matrix_onnx(model: MatrixModel, path: str | Path) -> Path:
    """Export to ONNX: input ``input`` = tiles (N, 3, S, S), float32 on the 0–255 scale
    (RGB = z−1, z, z+1 µm), output ``logits`` (N, 4); the model's normalisation is part
    of the graph, so the file is self-contained. Dynamic batch size."""
    import torch

    from skinoct.models import export_onnx

    size = int(model.preprocessing.input_size)
    import copy

    network = copy.deepcopy(model.network).cpu().eval()  # the model stays on its device
    wrapped = _Preprocessed(network, model.preprocessing.normalization)
    example = torch.rand(2, 3, size, size) * 255
    return export_onnx(wrapped.eval(), example, path, dynamic_axes={0: "batch"})


def save_matrix_model(
    model_dir: str | Path,
    network,
    *,
    preprocessing: Preprocessing,
    classes=GRADES,
    training: dict | None = None,
    scores: dict | None = None,
    provenance: dict | None = None,
    notice: str | None = None,
) -> Path:
    """Write a grading model directory (``model.safetensors`` + ``model.json``).

    ``notice`` is a one-line caveat shown by the CLI whenever the model is used
    (the bundled model says that it was trained on phantom tiles only).
    """
    from skinoct.models import save_artifact

    manifest = {
        "task": TASK,
        "architecture": {
            "name": "mobilenet_v3_small",
            "library": "torchvision",
            "head": network.head,
            "num_classes": len(classes),
            "output": "logits; softmax gives P(grade)",
        },
        "classes": [int(c) for c in classes],
        "preprocessing": preprocessing.to_dict(),
        "training": training or {},
        "scores": scores or {},
        "provenance": provenance or {},
    }
    if notice:
        manifest["notice"] = str(notice)
    state = {k: v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    return save_artifact(model_dir, state, manifest)


def load_matrix_model(path: str | Path | None = None, *, device: str = "cpu") -> MatrixModel:
    """Load a grading model directory; ``None`` loads the bundled phantom-trained model.

    Parameters
    ----------
    path : str or Path, optional
        Model directory written by ``skinoct matrix train`` (or its ``model.json``).
    device : str
        Torch device for the network ('cpu', 'cuda').

    Raises
    ------
    ModelError
        Missing or corrupt files (SHA-256 checked), a model of another task, or
        weights that do not fit the declared architecture.

    Notes
    -----
    The bundled model was trained on synthetic phantom tiles only; its manifest
    says so (``provenance``). It is not validated on real LC-OCT images.
    """
    import torch

    from skinoct.matrix._network import MatrixNet
    from skinoct.models import bundled_model_dir, load_artifact

    folder = bundled_model_dir(TASK) if path is None else Path(path)
    artifact = load_artifact(folder, task=TASK)
    manifest = artifact.manifest
    arch = manifest.get("architecture", {})
    if arch.get("name") != "mobilenet_v3_small":
        raise ModelError(f"unknown architecture {arch.get('name')!r}", path=artifact.path)
    classes = tuple(int(c) for c in manifest.get("classes", GRADES))
    head = arch.get("head", "keras2")
    try:
        preprocessing = Preprocessing.from_dict(manifest.get("preprocessing", {}))
    except InputError as exc:
        raise ModelError(f"invalid model: {str(exc).splitlines()[0]}", path=artifact.path) from exc

    def build():
        try:
            # the random initialisation is overwritten: leave the caller's RNG alone
            with torch.random.fork_rng(devices=[]):
                network = MatrixNet(head=head, num_classes=len(classes))
            missing, unexpected = network.load_state_dict(artifact.state_dict, strict=False)
        except (RuntimeError, InputError) as exc:
            raise ModelError(
                f"invalid model: {str(exc).splitlines()[0]}", path=artifact.path
            ) from exc
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ModelError(
                f"weights do not fit the architecture (missing {missing[:3]}, "
                f"unexpected {list(unexpected)[:3]})",
                path=artifact.path,
            )
        return network.to(device, memory_format=torch.channels_last).eval()

    model = MatrixModel(
        build, preprocessing, classes, manifest, artifact.path, artifact.manifest_sha256,
        device=device,
    )  # fmt: skip
    # Fail now, not at the first tile, if the weights do not fit. A cached export of this
    # model proves they do (it was made from them): then torchvision is only imported
    # when torch grades.
    if not model._exported().has_export():
        model.network  # noqa: B018 (builds and checks)
    return model


def predict_tiles(
    tiles,
    model: MatrixModel,
    *,
    engine: Engine = "torch",
    batch_size: int = 64,
    threads: int | None = None,
    tta: bool = False,
    progress: Callable | None = None,
) -> np.ndarray:
    """Grade probabilities of tiles.

    Parameters
    ----------
    tiles : array_like, shape (N, 3, H, W)
        RGB = z−1 µm, z, z+1 µm on the 0–255 scale (uint8 or float); resized to the
        model's input size when needed.
    model : MatrixModel
        From :func:`load_matrix_model`.
    engine : {'auto', 'torch', 'onnx', 'openvino', 'openvino-int8'}
        Torch eager on the model's device, onnxruntime on the CPU (exported on
        first use), OpenVINO's CPU plugin on the same export, in bfloat16 where
        the CPU supports it (optional dependency, ``pip install 'skinoct[openvino]'``;
        the fastest on AVX-512 BF16 / AMX CPUs, see BENCHMARKS.md), or OpenVINO on an
        NNCF int8 quantisation of it (quantised and checked on first use, cached;
        :mod:`skinoct.matrix._quantize`). ``'auto'``: the int8 model when one is cached
        and passed its agreement check and was measured faster, else the fastest
        installed for this CPU
        (:meth:`MatrixModel.engine_for`; record ``model.engine_for(engine)`` in outputs).
    batch_size : int
        Tiles per forward pass.
    threads : int, optional
        onnxruntime intra-op threads (default: all cores).
    tta : bool
        Test-time augmentation: average the softmax over the 8 exact symmetries
        of the square tile (4 right-angle rotations, each also mirrored), which
        makes the result invariant to them; 8× the work. Not in seed 002. On
        phantom tiles it lifted the bundled model's accuracy (docs/matrix.md).
    progress : callable, optional
        ``progress(iterable, description=..., total=...)`` wrapper, e.g. a
        progress bar.

    Returns
    -------
    ndarray of float32, shape (N, len(model.classes))
        Softmax probabilities; column ``j`` is grade ``model.classes[j]``.

    Examples
    --------
    >>> model = load_matrix_model()  # doctest: +SKIP
    >>> p = predict_tiles(tiles, model)  # doctest: +SKIP
    >>> expected_grade(p)  # Σ p·g per tile  # doctest: +SKIP
    """
    import torch

    device = model.device
    engine = model.engine_for(engine)
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    array = _check_tiles(tiles)
    n = array.shape[0]
    out = np.empty((n, len(model.classes)), dtype=np.float32)
    # with TTA a batch holds batch_size forward passes: batch_size // 8 tiles × 8 views
    step = max(1, int(batch_size) // len(TTA_VIEWS)) if tta else int(batch_size)
    starts = range(0, n, step)
    if progress is not None:
        starts = progress(starts, description="grading tiles", total=len(starts))
    size = int(model.preprocessing.input_size)
    # uint8 tiles of the model's size need no resize: they go to an exported engine as
    # float32 made by NumPy (about 4x faster than torch's conversion) or, with OpenVINO,
    # as they are (converted inside the graph). The same values either way.
    direct = array.dtype == np.uint8 and array.shape[-2:] == (size, size) and not tta
    runner = None
    if engine == "onnx":
        runner = model.onnx_runner(threads=threads)
    elif engine == "openvino":
        runner = model.openvino_runner(threads=threads, input_type="u8" if direct else "f32")
    elif engine == INT8_ENGINE:
        runner = model.int8().runner(threads=threads)
    with torch.inference_mode():
        for start in starts:
            chunk = array[start : start + step]
            if runner is not None and direct:
                raw = chunk if engine == "openvino" else chunk.astype(np.float32)
                logits = torch.from_numpy(runner(raw))
            elif runner is not None:
                x = preprocess_tiles(chunk, model.preprocessing, normalize=False)
                x = _views(x) if tta else x
                logits = torch.from_numpy(runner(x.numpy()))
            else:
                x = preprocess_tiles(chunk, model.preprocessing, device=device)
                x = _views(x) if tta else x
                # channels-last: faster on the CPU with oneDNN, same logits (to 1e-4)
                x = x.contiguous(memory_format=torch.channels_last)
                logits = model.network(x).float()
            p = torch.softmax(logits, dim=1)
            if tta:  # views are stacked view-major: (8 · m, C) → mean over the 8 views
                p = p.reshape(len(TTA_VIEWS), len(chunk), -1).mean(dim=0)
            out[start : start + len(chunk)] = p.cpu().numpy()
    return out


#: The 8 symmetries of a square tile: (quarter turns, then mirrored top–bottom).
TTA_VIEWS = tuple((k, flip) for flip in (False, True) for k in range(4))


def _views(x):
    """Stack the :data:`TTA_VIEWS` of a batch (N, C, S, S), view-major: (8·N, C, S, S)."""
    import torch

    views = []
    for k, flip in TTA_VIEWS:
        view = torch.rot90(x, k, dims=(2, 3))
        views.append(torch.flip(view, dims=(2,)) if flip else view)
    return torch.cat(views)


def expected_grade(probabilities, *, classes=GRADES) -> np.ndarray:
    """Σ p·g per tile: the probability-weighted grade (a continuous score in [1, 4])."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise InputError(f"probabilities must have shape (N, {len(classes)}), got {p.shape}")
    return p @ np.asarray(classes, dtype=float)
