"""Inference: sections in, labels + probabilities + normalised softmax entropy out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinoct.io import LABEL_VALUES, check_spacing
from skinoct.layers._decode import decode_ordered, min_epidermis_rows
from skinoct.layers._model import LayersModel, load_layers_model, resolve_device
from skinoct.layers._resample import grid_shape, pad_to_multiple, resample_images
from skinoct.models import ENGINES, resolve_engine

__all__ = [
    "DECODINGS",
    "ENGINES",
    "SegmentationResult",
    "normalized_entropy",
    "predict_logits",
    "resolve_section_engine",
    "segment_section",
    "segment_sections",
]

#: ``'ordered'`` (default, every writer): the most probable anatomically ordered
#: labelling without islands (:func:`skinoct.layers.decode_ordered`); ``'argmax'``:
#: the raw per-pixel argmax, for diagnostics only.
DECODINGS = ("ordered", "argmax")


@dataclass(frozen=True)
class SegmentationResult:
    """What :func:`segment_section` (one section) or :func:`segment_sections` returns.

    Arrays have the input's shape: ``(z, x)`` for one section, ``(n, z, x)`` for a
    stack (probabilities get a class axis before ``z``).

    Attributes
    ----------
    labels : ndarray of uint8
        0 air, 1 stratum corneum, 2 epidermis, 3 dermis; by default decoded in
        anatomical order (every column air → SC → epidermis → dermis, each label one
        run, every label one 4-connected piece, and at least
        :data:`skinoct.layers.MIN_EPIDERMIS_UM` of epidermis between air and dermis:
        :func:`skinoct.layers.decode_ordered`).
    probabilities : ndarray of float32 or None
        Softmax probability of each of the four skinoct labels, in label order
        ``(4, z, x)``; a label the model does not predict has probability 0. ``None``
        when not kept (stacks, by default, to save memory).
    entropy : ndarray of float32 or None
        Softmax entropy divided by ``log(K)`` for the model's ``K`` classes: 0 =
        certain, 1 = uniform over the classes. Raw per-pixel uncertainty, computed
        from the softmax before decoding. ``None`` when not computed
        (:func:`segment_sections` with ``entropy=False``).
    spacing_um : tuple of float
        ``(dz, dx)`` of the input, unchanged.
    label_values : tuple of int
        The labels the model can predict.
    mutual_information : ndarray of float32 or None
        With MC-dropout: the epistemic part of the entropy (entropy of the mean minus
        mean entropy of the samples), also divided by ``log(K)``.
    decoding : {'ordered', 'argmax'}
        How ``labels`` were obtained from the probabilities (:data:`DECODINGS`).
    """

    labels: np.ndarray = field(repr=False)
    probabilities: np.ndarray | None = field(repr=False)
    entropy: np.ndarray | None = field(repr=False)
    spacing_um: tuple[float, float]
    label_values: tuple[int, ...]
    mutual_information: np.ndarray | None = field(default=None, repr=False)
    decoding: str = "ordered"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)


def normalized_entropy(probabilities, *, axis: int = 1):
    """Entropy of class probabilities along ``axis`` divided by ``log(K)`` (torch or NumPy).

    Examples
    --------
    >>> float(normalized_entropy(np.full((1, 4), 0.25))[0])
    1.0
    """
    if isinstance(probabilities, np.ndarray):
        p = probabilities.astype(np.float32, copy=False)
        k = p.shape[axis]
        h = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=axis)
        return np.clip(h / np.float32(math.log(k)), 0.0, 1.0).astype(np.float32)
    k = probabilities.shape[axis]
    # -(p·log p).sum / log K with one temporary, in place: bit for bit the same numbers,
    # and no fresh pages per op for a full-depth section (12 → 2.5 ms at 4 × 300 × 1200)
    h = probabilities.clamp_min(1e-12).log_().mul_(probabilities).sum(dim=axis)
    return h.div_(-math.log(k)).clamp_(0.0, 1.0)


def predict_logits(
    model: LayersModel,
    batch: np.ndarray,
    *,
    engine: str = "torch",
    device: str | None = "cpu",
    threads: int | None = None,
) -> np.ndarray:
    """Raw network logits for a ``(n, 1, h, w)`` batch already on the model grid.

    ``h`` and ``w`` must be multiples of ``model.spec.divisor``. Used to check that
    the torch and onnxruntime engines agree.
    """
    engine = _check_engine(engine, device)
    x = np.ascontiguousarray(batch, dtype=np.float32)
    if engine != "torch":
        return model.runner(engine, threads=threads)(x)
    import torch

    dev = resolve_device(device)
    with torch.inference_mode():
        return model.network(dev)(torch.from_numpy(x).to(dev)).float().cpu().numpy()


def segment_section(
    image: np.ndarray,
    model: LayersModel | str | Path,
    *,
    spacing_um,
    tta: bool = False,
    mc_dropout: int = 0,
    engine: str = "torch",
    device: str | None = "auto",
    threads: int | None = None,
    seed: int = 0,
    decoding: str = "ordered",
) -> SegmentationResult:
    """Segment one vertical section into air, stratum corneum, epidermis and dermis.

    The section is normalised as the model was trained, resampled to the model's
    pixel spacing, run through ``monai.inferers.sliding_window_inference`` (one
    window when it fits, Gaussian-blended tiles otherwise) and the logits are
    resampled back, so every output has exactly the input's shape.

    Parameters
    ----------
    image : ndarray, shape (z, x)
        Intensities (any real dtype), depth down.
    model : LayersModel or str or Path
        A loaded model or a model directory (:func:`load_layers_model`).
    spacing_um : (float, float)
        ``(dz, dx)`` pixel size in µm (one value for isotropic).
    tta : bool
        Average the probabilities of the section and of its left-right mirror
        (the only flip that keeps anatomy plausible).
    mc_dropout : int
        Number of stochastic passes with dropout active (0 = off); their mean
        probabilities are used and ``mutual_information`` is filled in. Torch engine
        only.
    engine : {'torch', 'onnx', 'openvino', 'auto'}
        ``'onnx'`` runs onnxruntime on the CPU, ``'openvino'`` OpenVINO's CPU plugin in
        float32 (both on one export, cached and verified, see
        :meth:`LayersModel.onnx_path`); ``'auto'`` the fastest installed here
        (:func:`skinoct.models.resolve_engine`; torch with MC-dropout or a GPU).
    device : {'auto', 'cpu', 'cuda'}
        Torch device.
    threads : int, optional
        onnxruntime intra-op threads.
    seed : int
        Seed of the MC-dropout masks (results are reproducible).
    decoding : {'ordered', 'argmax'}
        ``'ordered'`` (default): labels are the most probable labelling ordered air →
        SC → epidermis → dermis in every column, without islands
        (:func:`skinoct.layers.decode_ordered`, a few ms per section). ``'argmax'``:
        the raw per-pixel argmax, for diagnostics.

    Returns
    -------
    SegmentationResult
        ``labels`` uint8 (z, x), ``probabilities`` float32 (4, z, x), ``entropy``
        float32 (z, x) in [0, 1] (raw, from the softmax before decoding).

    Raises
    ------
    InputError
        Not a 2-D finite image, or an invalid spacing.
    ValueError
        Unknown engine or decoding, negative ``mc_dropout``, or MC-dropout with
        ``engine='onnx'``.

    Examples
    --------
    >>> model = load_layers_model()  # the bundled phantom-trained model  # doctest: +SKIP
    >>> result = segment_section(image, model, spacing_um=(1.0, 1.0))  # doctest: +SKIP
    >>> result.labels.shape == image.shape  # doctest: +SKIP
    True
    """
    from skinoct.errors import InputError

    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"expected a 2-D vertical section (z, x), got shape {image.shape}")
    result = segment_sections(
        image[None],
        model,
        spacing_um=spacing_um,
        tta=tta,
        mc_dropout=mc_dropout,
        engine=engine,
        device=device,
        threads=threads,
        keep_probabilities=True,
        seed=seed,
        decoding=decoding,
    )
    return SegmentationResult(
        labels=result.labels[0],
        probabilities=result.probabilities[0],
        entropy=result.entropy[0],
        spacing_um=result.spacing_um,
        label_values=result.label_values,
        mutual_information=None
        if result.mutual_information is None
        else result.mutual_information[0],
        decoding=result.decoding,
    )


def segment_sections(
    stack: np.ndarray,
    model: LayersModel | str | Path,
    *,
    spacing_um,
    tta: bool = False,
    mc_dropout: int = 0,
    engine: str = "torch",
    device: str | None = "auto",
    threads: int | None = None,
    batch_size: int = 8,
    keep_probabilities: bool = False,
    seed: int = 0,
    decoding: str = "ordered",
    entropy: bool = True,
) -> SegmentationResult:
    """Segment a stack of vertical sections ``(n, z, x)`` in batches.

    For a volume ``(z, y, x)`` pass ``volume.transpose(1, 0, 2)`` (the sections
    ``volume[:, y, :]``). Each section is normalised on its own, exactly as
    :func:`segment_section` does, so both give the same result for the same section;
    the network runs on ``batch_size`` sections at a time.

    Parameters
    ----------
    stack : ndarray, shape (n, z, x)
        Sections.
    model, spacing_um, tta, mc_dropout, engine, device, threads, seed, decoding
        As :func:`segment_section` (every section is decoded in anatomical order by
        default); ``spacing_um`` is ``(dz, dx)`` of one section.
    batch_size : int
        Sections per network call.
    keep_probabilities : bool
        Also return the ``(n, 4, z, x)`` probabilities (16 bytes per pixel).
    entropy : bool
        Compute the per-pixel entropy (default). ``False`` leaves ``entropy`` None:
        for callers that keep the probabilities and need the entropy of a few rows
        only (:func:`skinoct.layers.segment_volume`: the band around the DEJ).

    Returns
    -------
    SegmentationResult
        With ``(n, z, x)`` arrays.

    Raises
    ------
    InputError
        Not a 3-D finite stack, or an invalid spacing.
    ValueError
        Invalid options (see :func:`segment_section`).
    """
    import torch

    from skinoct.errors import InputError

    engine = resolve_section_engine(engine, mc_dropout=mc_dropout, device=device)
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    mc_dropout = int(mc_dropout)
    if mc_dropout < 0:
        raise ValueError(f"mc_dropout must be >= 0, got {mc_dropout}")
    if mc_dropout and engine != "torch":
        raise ValueError(f"mc_dropout needs engine='torch' (the {engine} export has no dropout)")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(model, LayersModel):
        model = load_layers_model(model)
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.size == 0:
        raise InputError(f"expected a stack of sections (n, z, x), got shape {stack.shape}")
    if stack.dtype.kind not in "uif":
        raise InputError(f"unsupported pixel type {stack.dtype}")
    if stack.dtype.kind == "f" and not np.isfinite(stack).all():
        raise InputError("image holds NaN or infinite values")
    spacing = check_spacing(spacing_um, 2)
    dev = "cpu" if engine != "torch" else resolve_device(device)
    runner = model.runner(engine, threads=threads) if engine != "torch" else None

    n, z, x = stack.shape
    labels = np.empty((n, z, x), np.uint8)
    entropy_out = np.empty((n, z, x), np.float32) if entropy else None
    probs_out = np.zeros((n, len(LABEL_VALUES), z, x), np.float32) if keep_probabilities else None
    mi_out = np.empty((n, z, x), np.float32) if mc_dropout else None
    lut = torch.as_tensor(model.label_values, dtype=torch.uint8)

    n_views = (2 if tta else 1) * max(1, mc_dropout)
    # Model-grid logits of every view are kept per chunk: shrink the chunk so memory
    # stays that of ``batch_size`` single-view sections.
    chunk_size = max(1, int(batch_size) // n_views)
    min_epidermis = min_epidermis_rows(spacing[0])  # the dermis never touches air
    for start in range(0, n, chunk_size):
        chunk = np.stack([model.normalize(s) for s in stack[start : start + chunk_size]])
        views = _grid_logits(
            model,
            chunk,
            spacing,
            tta=tta,
            mc_dropout=mc_dropout,
            device=dev,
            runner=runner,
            seed=int(seed),
        )
        # Resampling, softmax and entropy one section at a time: full-resolution
        # temporaries of one section stay in cache (about 1.5x faster than a batch).
        for i in range(chunk.shape[0]):
            k = start + i
            probs, mi = _finish([v[i : i + 1] for v in views], (z, x), mc=bool(mc_dropout))
            # max().indices: the same as argmax(1) but several times faster on the CPU
            labels[k] = lut[probs.max(dim=1).indices[0]].numpy()
            if entropy_out is not None:
                entropy_out[k] = normalized_entropy(probs)[0].numpy()
            full = _label_order(probs[0].numpy(), model.label_values)
            if decoding == "ordered":
                labels[k] = decode_ordered(
                    full,
                    label_values=model.label_values,
                    argmax=labels[k],
                    min_epidermis_px=min_epidermis,
                )
            if probs_out is not None:
                probs_out[k] = full
            if mi_out is not None:
                mi_out[k] = mi[0].numpy()
    return SegmentationResult(
        labels=labels,
        probabilities=probs_out,
        entropy=entropy_out,
        spacing_um=spacing,
        label_values=model.label_values,
        mutual_information=mi_out,
        decoding=decoding,
    )


# ------------------------------------------------------------------------ internals


def _label_order(probs: np.ndarray, label_values: tuple[int, ...]) -> np.ndarray:
    """``(K, z, x)`` probabilities of the model's classes as ``(4, z, x)`` in label order."""
    if tuple(label_values) == LABEL_VALUES:
        return probs
    full = np.zeros((len(LABEL_VALUES), *probs.shape[1:]), np.float32)
    for c, value in enumerate(label_values):
        full[value] = probs[c]
    return full


def _check_engine(engine: str, device=None) -> str:
    """The engine that runs: ``'auto'`` resolved by :func:`skinoct.models.resolve_engine`."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return resolve_engine(engine, task="layers", device=device)


def resolve_section_engine(engine: str, *, mc_dropout: int = 0, device=None) -> str:
    """The engine :func:`segment_section` runs for these options (``'auto'`` resolved).

    MC-dropout needs the torch network, so ``'auto'`` gives torch then; otherwise
    ``'auto'`` is the fastest engine installed here (:func:`skinoct.models.resolve_engine`).

    Raises
    ------
    ValueError
        An unknown engine name.
    """
    if engine == "auto" and mc_dropout:
        return "torch"
    return _check_engine(engine, device)


def _grid_logits(model, chunk, spacing, *, tta, mc_dropout, device, runner, seed):
    """Model-grid logits ``(b, K, gz, gx)`` of each view (mirror, MC-dropout pass)."""
    import contextlib

    import torch

    b, z, x = chunk.shape
    grid = grid_shape((z, x), spacing, model.spacing_um)
    rng = contextlib.nullcontext()
    if mc_dropout:
        # Own RNG stream, seeded: MC-dropout masks are reproducible and the caller's
        # global torch RNG is left as it was.
        cuda = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
        rng = torch.random.fork_rng(devices=cuda)
    out = []
    with rng, torch.inference_mode():
        if mc_dropout:
            torch.manual_seed(seed)
        inp = resample_images(torch.from_numpy(chunk)[:, None], grid)
        inp = pad_to_multiple(inp, model.spec.divisor)
        for _ in range(max(1, mc_dropout)):
            for flipped in [False, True] if tta else [False]:
                view = inp.flip(-1) if flipped else inp
                logits = _window_logits(
                    model, view, device=device, runner=runner, stochastic=mc_dropout > 0
                )
                if flipped:
                    logits = logits.flip(-1)
                out.append(logits[..., : grid[0], : grid[1]])
    return out


def _finish(views, shape, *, mc: bool):
    """Mean softmax probabilities on the input grid ``(1, K, z, x)`` and the MC mutual info.

    Logits are resampled to the input grid before the softmax, so boundaries stay as
    sharp as the network made them.
    """
    import torch
    import torch.nn.functional as F

    total = None
    mean_h = None
    with torch.inference_mode():
        for logits in views:
            if tuple(logits.shape[-2:]) != tuple(shape):
                logits = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False)
            prob = torch.softmax(logits, dim=1)
            total = prob if total is None else total.add_(prob)
            if mc:
                h = normalized_entropy(prob)
                mean_h = h if mean_h is None else mean_h.add_(h)
        probs = total.div_(len(views))
        mi = None
        if mc:
            mi = (normalized_entropy(probs) - mean_h / len(views)).clamp_(0.0, 1.0)
    return probs, mi


def _window_logits(model, batch, *, device, runner, stochastic):
    """Logits of a padded batch, via MONAI sliding-window inference where the batch is
    larger than the model's window (float32, CPU)."""
    import torch

    h, w = batch.shape[-2:]
    roi = (min(h, model.max_window[0]), min(w, model.max_window[1]))
    tiled = roi != (h, w)

    if runner is not None:

        def predictor(t):
            return torch.from_numpy(runner(t.detach().cpu().numpy()))

    else:
        net = model.network(device)
        if stochastic:
            _set_dropout(net, True)

        def predictor(t):
            return net(t.to(device)).float()

    if runner is None:
        batch = batch.to(device)
    try:
        if not tiled:
            # One window covering the batch: what sliding_window_inference computes then
            # (weights of 1), without importing MONAI on the exported engines' path.
            return predictor(batch).float().cpu()
        from monai.inferers import sliding_window_inference

        out = sliding_window_inference(
            batch,
            roi_size=roi,
            sw_batch_size=batch.shape[0],
            predictor=predictor,
            overlap=0.25,
            mode="gaussian",
            padding_mode="reflect",
        )
    finally:
        if runner is None and stochastic:
            _set_dropout(model.network(device), False)
    if hasattr(out, "as_tensor"):  # MONAI MetaTensor -> plain tensor
        out = out.as_tensor()
    return out.float().cpu()


def _set_dropout(net, active: bool) -> None:
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.train(active)
