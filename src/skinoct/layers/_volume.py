"""Segment a volume section by section: :func:`segment_volume`.

A ``'zyx'`` volume is segmented as the vertical sections ``volume[:, y, :]`` (every
``section_step``-th, in batches, through :func:`segment_sections`); each section gives
the surface, SC-junction and DEJ depths per column
(:func:`skinoct.morphometry.extract_boundaries`, unsmoothed) and the mean entropy in a
band along its DEJ (:func:`skinoct.morphometry.dej_entropy`). The surfaces between
segmented sections are for the caller to interpolate
(:func:`skinoct.morphometry.interpolate_rows`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from skinoct.errors import InputError

__all__ = ["VolumeSegmentation", "segment_volume"]


@dataclass
class VolumeSegmentation:
    """Per-section boundaries of a segmented volume (:func:`segment_volume`).

    Attributes
    ----------
    rows : ndarray of int
        The y index of each segmented section (increasing, first and last row included).
    bounds : dict of str to ndarray
        ``surface``, ``sc_junction``, ``dej``: ``(len(rows), nx)`` depths in µm from the
        top of the volume, unsmoothed, NaN where absent (a section without skin is all
        NaN).
    dej_entropy : ndarray, (len(rows), nx)
        Mean normalised entropy in a band along the DEJ of each section.
    segmented_depth_um : float
        Depth down to which most sections were segmented (the full depth without a
        pilot crop).
    overlays : dict of int to tuple
        ``{y: (section, boundaries, entropy)}`` of the sections kept for overlays.
    """

    rows: np.ndarray
    bounds: dict[str, np.ndarray] = field(repr=False)
    dej_entropy: np.ndarray = field(repr=False)
    segmented_depth_um: float
    overlays: dict[int, tuple] = field(default_factory=dict, repr=False)


def segment_volume(
    volume,
    model,
    *,
    spacing_um,
    section_step: int = 1,
    crop_margin_um: float | None = 60.0,
    engine: str = "torch",
    batch_size: int = 4,
    entropy_band_um: float | None = None,
    n_overlays: int = 0,
    after_batch: Callable[[], None] | None = None,
    workers: int | None = None,
) -> VolumeSegmentation:
    """Segment the vertical sections of a volume and find their boundaries.

    With ``crop_margin_um``, a pilot pass segments about one section in 16 at full
    depth; the other sections are then segmented only down to the deepest DEJ the
    pilot found plus the margin (the tissue below is dermis; the model's time goes
    with the section's area). Overlays show pilot sections, at full depth.

    Parameters
    ----------
    volume : array-like, (z, y, x)
        Intensities; a memory-mapped array is read one batch of sections at a time.
    model : LayersModel
        A loaded layer model (:func:`load_layers_model`).
    spacing_um : (float, float, float)
        ``(dz, dy, dx)`` in µm.
    section_step : int
        Segment every k-th section (plus the last one).
    crop_margin_um : float or None
        Margin below the pilot's deepest DEJ; None segments every section at full depth.
    engine : str
        Inference engine (as :func:`segment_sections`).
    batch_size : int
        Sections per batch.
    entropy_band_um : float, optional
        Half-height (µm) of the band around the DEJ over which the entropy is
        averaged. Default: the band the model's DEJ-uncertainty threshold was
        calibrated at (:func:`dej_flag_settings`).
    n_overlays : int
        Pilot sections (evenly spread) kept in ``overlays``.
    after_batch : callable, optional
        Called after each batch (e.g. to release the pages of a memory-mapped volume),
        from the thread that segmented it.
    workers : int, optional
        Batches segmented at once, each in a thread of its own running the network and
        the post-processing on an equal share of the thread budget
        (:func:`skinoct.models.default_threads`, else every core). Default: 2 with an
        exported engine (onnxruntime, OpenVINO) and a budget of 2 threads or more,
        else 1. Two one-thread workers keep both cores of a laptop busy through each
        batch's serial steps, where one two-thread worker leaves one idle (≈ 1.4×
        faster, BENCHMARKS.md); the results are the same. With more than one worker,
        torch's intra-op thread count (process-wide) is set to the share for the call
        and restored after it.

    Returns
    -------
    VolumeSegmentation

    Raises
    ------
    InputError
        A volume that is not 3-D, or bad options.
    """
    from skinoct.morphometry import BOUNDARY_NAMES, section_rows

    shape = np.shape(volume)
    if len(shape) != 3:
        raise InputError(f"segment_volume needs a (z, y, x) volume, got shape {shape}")
    if int(section_step) < 1 or int(batch_size) < 1 or int(n_overlays) < 0:
        raise InputError("section_step and batch_size must be ≥ 1, n_overlays ≥ 0")
    if crop_margin_um is not None and not crop_margin_um >= 0:
        raise InputError(f"crop_margin_um must be ≥ 0 or None, got {crop_margin_um}")
    if entropy_band_um is None:
        from skinoct.layers._calibration import dej_flag_settings

        entropy_band_um = dej_flag_settings(model).band_um
    elif not (np.isfinite(entropy_band_um) and entropy_band_um >= 0):
        raise InputError(f"entropy_band_um must be a finite number ≥ 0, got {entropy_band_um}")
    nz, ny, nx = shape
    dz, _, dx = (float(s) for s in spacing_um)
    rows = section_rows(ny, int(section_step))
    out = VolumeSegmentation(
        rows=rows,
        bounds={name: np.full((rows.size, nx), np.nan) for name in BOUNDARY_NAMES},
        dej_entropy=np.full((rows.size, nx), np.nan),
        segmented_depth_um=nz * dz,
    )
    if crop_margin_um is None:
        pilot = np.arange(rows.size)
    else:
        n_pilot = min(rows.size, max(3, rows.size // 16))
        pilot = np.unique(np.linspace(0, rows.size - 1, n_pilot).round().astype(int))
    keep: set[int] = set()
    if n_overlays:
        picks = np.linspace(0, pilot.size - 1, int(n_overlays)).round().astype(int)
        keep = {int(rows[pilot[i]]) for i in np.unique(picks)}
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers must be ≥ 1, got {workers}")
    from skinoct.layers import resolve_section_engine

    engine = resolve_section_engine(engine, device="auto")  # once, for every batch
    n_workers, threads = _worker_plan(engine, workers)
    runner = getattr(model, "runner", None)  # stand-in models in tests have none
    if n_workers > 1 and engine != "torch" and runner is not None:
        runner(engine, threads=threads)  # export (first use) and open it here, not in a worker
    run = _Runner(
        volume, model, (dz, dx), engine, int(batch_size), entropy_band_um, after_batch,
        workers=n_workers, threads=threads,
    )  # fmt: skip
    run(out, pilot, nz, keep)
    depth_rows = nz
    rest = np.setdiff1d(np.arange(rows.size), pilot)
    if rest.size:
        dej = out.bounds["dej"][pilot]
        deepest = np.nanmax(dej) if np.isfinite(dej).any() else np.nan
        if np.isfinite(deepest):
            depth_rows = int(min(nz, math.ceil((deepest + crop_margin_um) / dz) + 1))
        run(out, rest, depth_rows, keep)
    out.segmented_depth_um = depth_rows * dz
    return out


def _worker_plan(engine: str, workers: int | None) -> tuple[int, int | None]:
    """``(workers, threads per worker)`` for :func:`segment_volume` on a resolved
    ``engine`` (threads ``None``: the engines' own default)."""
    from skinoct.models import default_threads

    budget = default_threads() or os.cpu_count() or 1
    if workers is None:
        workers = 2 if engine in ("onnx", "openvino") and budget >= 2 else 1
    workers = int(workers)
    if workers == 1:
        return 1, None
    return workers, max(1, budget // workers)


@contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to ``n`` for the block (process-wide), then restored."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Runner:
    """Segments sections ``rows[which]`` down to ``depth_rows``; fills the result in place."""

    data: object
    model: object
    spacing: tuple[float, float]
    engine: str
    batch: int
    band_um: float
    after_batch: Callable[[], None] | None
    workers: int = 1
    threads: int | None = None

    def __call__(self, out: VolumeSegmentation, which, depth_rows: int, keep: set[int]) -> None:
        batches = [which[start : start + self.batch] for start in range(0, which.size, self.batch)]
        if self.workers == 1 or len(batches) < 2:
            for idx in batches:
                self._batch(out, idx, depth_rows, keep)
            return
        from concurrent.futures import ThreadPoolExecutor

        # Each batch fills its own rows of ``out``: the workers share nothing else.
        with (
            _torch_threads(self.threads),
            ThreadPoolExecutor(self.workers, thread_name_prefix="skinoct-segment") as pool,
        ):
            futures = [pool.submit(self._batch, out, idx, depth_rows, keep) for idx in batches]
            try:
                for future in futures:
                    future.result()  # in order: the first error is raised
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _batch(self, out: VolumeSegmentation, idx, depth_rows: int, keep: set[int]) -> None:
        from skinoct.layers import segment_sections  # the package name: patchable in tests
        from skinoct.morphometry import BOUNDARY_NAMES, dej_entropy, extract_boundaries

        dz = self.spacing[0]
        ys = out.rows[idx]
        section = np.asarray(self.data[:depth_rows, ys, :])
        stack = np.ascontiguousarray(section.transpose(1, 0, 2))
        # The entropy is needed near the DEJ only (and in full for an overlay), and the
        # DEJ is known after decoding: the probabilities are kept and the entropy is
        # computed on the rows the band can reach (a fifth of a section's work).
        result = segment_sections(
            stack,
            self.model,
            spacing_um=self.spacing,
            engine=self.engine,
            batch_size=self.batch,
            threads=self.threads,
            keep_probabilities=True,
            entropy=False,
        )
        order = list(result.label_values)  # the model's classes: segment_sections' entropy
        for i, (k, y) in enumerate(zip(idx, ys, strict=True)):
            labels = result.labels[i]
            if not (labels > 0).any():  # a section without skin: all boundaries NaN
                continue
            b = extract_boundaries(labels, self.spacing, smoothing_um=0)
            for name in BOUNDARY_NAMES:
                out.bounds[name][k] = b[name]
            if result.entropy is not None:  # computed anyway (a stand-in in tests)
                band = result.entropy[i]
            else:
                probs = result.probabilities[i]
                band = _band_entropy(probs, order, b.dej, dz, self.band_um)
            out.dej_entropy[k] = dej_entropy(band, b.dej, dz, band_um=self.band_um)
            if int(y) in keep:
                if result.entropy is not None:
                    entropy = result.entropy[i].copy()  # not a view of the batch
                else:
                    entropy = _entropy(probs, order, 0, probs.shape[1])
                drawn = {name: b[name] for name in BOUNDARY_NAMES}
                out.overlays[int(y)] = (stack[i].copy(), drawn, entropy)
        del stack, section, result
        if self.after_batch is not None:
            self.after_batch()


def _entropy(probs: np.ndarray, order, start: int, stop: int) -> np.ndarray:
    """Normalised entropy of rows ``start:stop`` of label-order ``(4, z, x)`` probabilities,
    over the model's classes in its order (as :func:`segment_sections` computes it)."""
    import torch

    from skinoct.layers import normalized_entropy

    with torch.inference_mode():
        block = torch.from_numpy(np.ascontiguousarray(probs[order, start:stop]))
        return normalized_entropy(block[None])[0].numpy()


def _band_entropy(probs, order, dej_um: np.ndarray, dz: float, band_um: float) -> np.ndarray:
    """A section's entropy map, computed only on the rows that :func:`dej_entropy` can
    read for this DEJ (NaN elsewhere): a gap in the DEJ is bridged between finite
    depths, so the band lies within their range ± the half-height (+ 2 rows)."""
    nz = probs.shape[1]
    entropy = np.full(probs.shape[1:], np.nan, np.float32)
    finite = dej_um[np.isfinite(dej_um)]
    if finite.size:
        half = max(band_um, 0.5 * dz)
        start = max(0, int(np.floor((finite.min() - half) / dz)) - 2)
        stop = min(nz, int(np.floor((finite.max() + half) / dz)) + 3)
        if stop > start:
            entropy[start:stop] = _entropy(probs, order, start, stop)
    return entropy
