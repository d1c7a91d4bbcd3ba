"""A loaded layer-segmentation model: network, class set and preprocessing as data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinoct.errors import ModelError
from skinoct.io import LABEL_NAMES, normalize_intensity
from skinoct.layers._network import (
    ARCHITECTURE_NAME,
    NetworkSpec,
    build_network,
    check_label_values,
)
from skinoct.models import (
    ExportedEngines,
    model_provenance,
    resolve_device,
    state_digest,
    trained_on_synthetic,
)

__all__ = [
    "DEFAULT_MODEL_SPACING_UM",
    "DEFAULT_NORMALIZATION",
    "SYNTHETIC_NOTICE",
    "LayersModel",
    "load_layers_model",
    "make_normalizer",
    "resolve_device",
    "save_layers_model",
]

TASK = "layers"

#: Pixel size (dz, dx) in µm at which the network runs by default. Depth keeps the
#: LC-OCT resolution (thin stratum corneum); layers vary slowly along x, so the lateral
#: axis is sampled at 2 µm, which halves the work (docs/layers.md).
DEFAULT_MODEL_SPACING_UM = (1.0, 2.0)

#: Intensity normalisation stored with every model (see skinoct.io.normalize_intensity).
DEFAULT_NORMALIZATION = {
    "method": "percentile",
    "lower_percentile": 0.5,
    "upper_percentile": 99.5,
    "clip": False,
}

#: Largest window (pixels on the model grid) run in one piece; larger sections are
#: tiled by ``monai.inferers.sliding_window_inference``.
DEFAULT_MAX_WINDOW = (1024, 1024)

SYNTHETIC_NOTICE = (
    "Trained on synthetic LC-OCT phantom sections only (skinoct.phantom), not on real "
    "images: its scores describe phantoms, not patients. Retrain or fine-tune "
    "(skinoct layers train DATA_DIR --init MODEL_DIR) on real annotated sections before "
    "any use on real data."
)


class LayersModel:
    """A skin-layer segmentation model ready for inference.

    Built by :func:`load_layers_model` (or by training); everything that inference
    needs besides the weights travels in the manifest: the class set, the pixel
    spacing the network expects and the intensity normalisation.

    Attributes
    ----------
    spec : NetworkSpec
        The UNet's arguments.
    label_values : tuple of int
        The skinoct label of each output channel (e.g. ``(0, 1, 2, 3)``).
    spacing_um : tuple of float
        ``(dz, dx)`` of the grid the network runs on.
    normalization : dict
        Arguments of :func:`skinoct.io.normalize_intensity`.
    manifest : dict
        The full manifest (training configuration, scores, provenance).
    path : Path or None
        Model directory it was loaded from.
    manifest_sha256 : str or None
        SHA-256 of its ``model.json`` (None for a model not loaded from disk).
    """

    def __init__(
        self,
        spec: NetworkSpec,
        state_dict: dict[str, Any],
        *,
        label_values: Sequence[int],
        spacing_um: Sequence[float] = DEFAULT_MODEL_SPACING_UM,
        normalization: dict[str, Any] | None = None,
        max_window: Sequence[int] = DEFAULT_MAX_WINDOW,
        manifest: dict[str, Any] | None = None,
        path: str | Path | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        self.spec = spec
        self.label_values = check_label_values(label_values)
        self.spacing_um = tuple(float(s) for s in spacing_um)
        if (
            len(self.spacing_um) != 2
            or not all(np.isfinite(self.spacing_um))
            or min(self.spacing_um) <= 0
        ):
            raise ModelError(f"model spacing must be two positive values, got {spacing_um}")
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        make_normalizer(self.normalization)  # validates
        d = spec.divisor
        self.max_window = tuple(max(d, int(w) // d * d) for w in max_window)
        self.manifest = dict(manifest or {})
        self.path = None if path is None else Path(path)
        self.manifest_sha256 = manifest_sha256
        self._state_dict = state_dict
        self._networks: dict[str, Any] = {}
        self._engines: ExportedEngines | None = None
        # Fail now, not at the first image, if the weights do not fit. A cached export of
        # this model proves they do (it was made from them): then the torch network, and
        # MONAI with it, is only built when torch runs it.
        if not self._exported().has_export():
            self.network("cpu")

    # ------------------------------------------------------------------ properties
    @property
    def n_classes(self) -> int:
        return len(self.label_values)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(LABEL_NAMES[v] for v in self.label_values)

    @property
    def weights_sha256(self) -> str | None:
        return self.manifest.get("weights_sha256")

    @property
    def is_synthetic(self) -> bool:
        """True when the manifest says the model saw phantom data only."""
        return trained_on_synthetic(self.manifest)

    def provenance(self, *, engine: str | None = None) -> dict[str, Any]:
        """Identity and provenance for outputs (:func:`skinoct.models.model_provenance`)."""
        return model_provenance(self, engine=engine)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"LayersModel(classes={list(self.class_names)}, spacing_um={self.spacing_um}{where})"

    # ------------------------------------------------------------------ preprocessing
    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Apply the model's intensity normalisation to one section."""
        return make_normalizer(self.normalization)(image)

    # ------------------------------------------------------------------ engines
    def network(self, device="cpu"):
        """The torch network on ``device`` in eval mode (built once per device)."""
        device = str(device)
        if device not in self._networks:
            import torch

            # The random initialisation is overwritten below: building leaves the caller's
            # RNG alone (the network may be built lazily, e.g. in seeded MC-dropout passes).
            with torch.random.fork_rng(devices=[]):
                net = build_network(self.spec, self.n_classes)
            try:
                net.load_state_dict(
                    {k: torch.as_tensor(v) for k, v in self._state_dict.items()}, strict=True
                )
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise ModelError(
                    f"weights do not fit the architecture in the manifest: {first}",
                    path=self.path,
                ) from None
            self._networks[device] = net.to(device).eval()
        return self._networks[device]

    def state_dict(self) -> dict[str, Any]:
        """The weights (CPU tensors)."""
        return {k: v.detach().cpu() for k, v in self.network("cpu").state_dict().items()}

    def onnx_path(self) -> Path:
        """Where the exported engines keep the ONNX file.

        Next to the weights (``model.<weights sha>-<digest>.onnx``) for a model
        directory one may write to; in ``$SKINOCT_CACHE_DIR`` (default
        ``~/.cache/skinoct``) for the bundled model, a read-only directory or an unsaved
        model. The name carries the model digest (weights + manifest), and the file is
        verified before use (:class:`skinoct.models.ExportedEngines`).
        """
        return self._exported().path

    def export_onnx(self, path: str | Path) -> Path:
        """Export the network (eval mode, dynamic batch, height and width) to ``path``."""
        import torch

        from skinoct.models import export_onnx

        d = self.spec.divisor
        example = torch.zeros((1, 1, 2 * d, 2 * d), dtype=torch.float32)
        net = build_network(self.spec, self.n_classes)
        net.load_state_dict(self.network("cpu").state_dict())
        return export_onnx(
            net.eval(),
            example,
            path,
            dynamic_axes={0: "batch", 2: "height", 3: "width"},
        )

    def onnx_runner(self, *, path: str | Path | None = None, threads: int | None = None):
        """An :class:`~skinoct.models.OnnxRunner`, exporting to the cache on first use.

        Without spinning threads: torch resampling and softmax run between calls.
        """
        from skinoct.models import OnnxRunner

        if path is not None:
            return OnnxRunner(path, threads=threads, spin=False)
        return self._exported().runner("onnx", threads=threads, spin=False)

    def runner(self, engine: str, *, threads: int | None = None):
        """The runner of an exported engine (``'onnx'`` or ``'openvino'``, float32)."""
        if engine == "onnx":
            return self.onnx_runner(threads=threads)
        return self._exported().runner(engine, threads=threads, precision="f32")

    def _exported(self) -> ExportedEngines:
        if self._engines is None:
            import numpy as np

            from skinoct.models import export_location, model_digest

            digest = model_digest(self.weights_sha256, self.manifest_sha256)
            digest = digest or state_digest(self._state_dict)
            folder, name = export_location(
                self.path, task=TASK, weights_sha256=self.weights_sha256, digest=digest
            )
            d = self.spec.divisor
            probe = np.random.default_rng(0).standard_normal((1, 1, 2 * d, 2 * d))
            self._engines = ExportedEngines(
                task=TASK,
                digest=digest,
                export=self.export_onnx,
                reference=self._reference_logits,
                probe=probe.astype(np.float32),
                folder=folder,
                name=name,
            )
        return self._engines

    def _reference_logits(self, batch):
        import torch

        with torch.inference_mode():
            return self.network("cpu")(torch.from_numpy(batch)).float().numpy()


def make_normalizer(normalization: dict[str, Any]):
    """The function ``image -> normalised float32 image`` a manifest's normalisation names.

    Raises
    ------
    ModelError
        For an unknown method or arguments.
    """
    import functools

    if normalization.get("method") != "percentile":
        raise ModelError(f"unknown normalisation {normalization.get('method')!r}")
    args = {k: v for k, v in normalization.items() if k != "method"}
    unknown = set(args) - {"lower_percentile", "upper_percentile", "clip"}
    if unknown:
        raise ModelError(f"unknown normalisation arguments {sorted(unknown)}")
    return functools.partial(normalize_intensity, **args)


def save_layers_model(
    model_dir: str | Path,
    model: LayersModel,
    *,
    training: dict[str, Any] | None = None,
    scores: dict[str, Any] | None = None,
    notice: str | None = None,
) -> Path:
    """Write ``model`` as a skinoct model directory (safetensors + manifest).

    Parameters
    ----------
    model_dir : str or Path
        Destination folder.
    model : LayersModel
        Weights, class set and preprocessing.
    training : dict, optional
        Training configuration and data description.
    scores : dict, optional
        Cross-validation scores.
    notice : str, optional
        A plain-language caveat shown by ``skinoct layers segment`` (e.g. that the
        model saw only synthetic data).
    """
    from skinoct.models import save_artifact

    manifest: dict[str, Any] = {
        "task": TASK,
        "architecture": {
            "name": ARCHITECTURE_NAME,
            "args": model.spec.unet_args(model.n_classes),
        },
        "classes": list(model.class_names),
        "label_values": list(model.label_values),
        "preprocessing": {
            "axes": "zx",
            "spacing_um": list(model.spacing_um),
            "normalization": dict(model.normalization),
            "divisible_by": model.spec.divisor,
        },
        "inference": {"max_window": list(model.max_window), "overlap": 0.25, "mode": "gaussian"},
        "training": training or {},
        "scores": scores or {},
    }
    if notice:
        manifest["notice"] = notice
    out = save_artifact(model_dir, model.state_dict(), manifest)
    from skinoct.models import load_artifact

    artifact = load_artifact(out, task=TASK)
    model.manifest, model.manifest_sha256 = artifact.manifest, artifact.manifest_sha256
    model.path = Path(out)
    model._engines = None
    return out


def load_layers_model(path: str | Path | None = None) -> LayersModel:
    """Load a layer-segmentation model; ``None`` loads the bundled phantom-trained one.

    The weights' SHA-256 is checked against the manifest before anything is used.

    Parameters
    ----------
    path : str or Path, optional
        A model directory (``model.json`` + ``model.safetensors``) or its
        ``model.json``. The bundled model was trained on synthetic phantoms only.

    Returns
    -------
    LayersModel

    Raises
    ------
    ModelError
        Not a skinoct model, a model of another task, an unknown architecture or class
        set, weights that do not fit the architecture, or a weights file whose SHA-256
        differs from the manifest (tampered or corrupt).

    Examples
    --------
    >>> model = load_layers_model()  # doctest: +SKIP
    >>> model.class_names  # doctest: +SKIP
    ('air', 'stratum_corneum', 'epidermis', 'dermis')
    """
    from skinoct.models import bundled_model_dir, load_artifact

    model_dir = bundled_model_dir(TASK) if path is None else Path(path)
    artifact = load_artifact(model_dir, task=TASK)
    m = artifact.manifest
    where = artifact.path / "model.json"
    arch = m.get("architecture")
    if not isinstance(arch, dict) or arch.get("name") != ARCHITECTURE_NAME:
        name = arch.get("name") if isinstance(arch, dict) else arch
        raise ModelError(f"unknown architecture {name!r}; expected {ARCHITECTURE_NAME}", path=where)
    args = arch.get("args") or {}
    classes = m.get("classes")
    values = m.get("label_values")
    if not isinstance(classes, list) or not isinstance(values, list):
        raise ModelError("manifest lacks 'classes' and 'label_values'", path=where)
    values = check_label_values(values, path=where)
    if list(classes) != [LABEL_NAMES[v] for v in values]:
        raise ModelError(
            f"unknown class set {classes!r}: names must be "
            f"{[LABEL_NAMES[v] for v in values]} for labels {list(values)}",
            path=where,
        )
    if int(args.get("out_channels", -1)) != len(values) or int(args.get("in_channels", 1)) != 1:
        raise ModelError(
            f"architecture has {args.get('out_channels')} outputs for {len(values)} classes",
            path=where,
        )
    spec = NetworkSpec.from_unet_args(args)
    pre = m.get("preprocessing") or {}
    inference = m.get("inference") or {}
    return LayersModel(
        spec,
        artifact.state_dict,
        label_values=values,
        spacing_um=pre.get("spacing_um", DEFAULT_MODEL_SPACING_UM),
        normalization=pre.get("normalization"),
        max_window=inference.get("max_window", DEFAULT_MAX_WINDOW),
        manifest=m,
        path=artifact.path,
        manifest_sha256=artifact.manifest_sha256,
    )
