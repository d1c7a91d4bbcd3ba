"""``analyze_volume``: one LC-OCT volume → layers, morphometry, dermal quality profile.

The path from a raw volume to the numbers a study needs (seed 000 + seed 002):

1. **read** — the volume is memory-mapped (``skinoct.io.read_volume(mmap=True)``) and
   hashed (SHA-256); nothing volume-sized is loaded.
2. **segmentation** — the vertical sections ``volume[:, y, :]`` (every ``section_step``-th,
   in batches) go through the layer model; each gives the surface, SC-junction and
   DEJ depths per column and the entropy along its DEJ. Between segmented sections
   the surfaces are interpolated linearly; outliers (a boundary more than
   ``outlier_um`` from the median of its ``outlier_window_um`` neighbourhood) are
   replaced by that median.
3. **morphometry** — a compact label volume rebuilt from the surfaces (cropped below
   the deepest DEJ) goes through :func:`skinoct.morphometry.measure_volume`: thickness
   maps, DEJ undulation, papillae; the DEJ entropy map gives the uncertain DEJ area.
4. **tiles** — for every 1-µm layer from the DEJ down to ``depth_stop_um`` (relative
   to the *local* DEJ), ``n_tiles`` tiles of 400 × 400 µm (slices z−1, z, z+1 µm as
   RGB) with :func:`skinoct.matrix.profile_tiles` (seed 002 §2.3.2).
5. **grading** — grade probabilities (:func:`skinoct.matrix.predict_tiles`) → expected
   score Σ p·g per tile → mean score per depth (the profile) → the volume's mean
   score over all depths.

Outputs (in ``out_dir``): ``analysis.json``, ``profile.csv``, ``maps/*.npy`` and
``maps.png``, ``uncertainty.png``, ``overlays/section_y*.png``, ``profile.png``.
``analysis.json`` holds no timestamps or timings, so a re-run on the same input
writes the same file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
import os
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from skinoct._version import __version__
from skinoct.errors import InputError

__all__ = ["AnalysisOptions", "analyze_volume", "model_fingerprint", "read_dej"]

#: Layer metrics copied into the study table (``scores.csv``), flattened names.
TABLE_METRICS = (
    "epidermis_thickness_um_mean",
    "epidermis_thickness_um_sd",
    "stratum_corneum_thickness_um_mean",
    "viable_epidermis_thickness_um_mean",
    "dej_undulation_index",
    "dej_surface_area_ratio",
    "dej_rms_amplitude_um",
    "dej_peak_to_valley_um",
    "dermal_papillae_count",
    "dermal_papillae_density_per_mm2",
    "coverage_dej",
    "dej_entropy_mean",
    "dej_uncertain_area_fraction",
)


@dataclass(frozen=True)
class AnalysisOptions:
    """Options of :func:`analyze_volume` (all recorded in ``analysis.json``).

    Attributes
    ----------
    section_step : int
        Segment every k-th vertical section and interpolate the surfaces between
        them (1 = every section).
    depth_stop_um, depth_step_um : float
        Profile depths below the local DEJ: ``0, step, …`` below ``depth_stop_um``
        (seed 002: 70 layers of 1 µm).
    n_tiles : int
        Tiles per depth (seed 002: 3).
    tile_size_um : float
        Tile side (400 µm).
    outlier_window_um, outlier_um : float
        Boundary outlier removal (see :func:`skinoct.study.surfaces.remove_outliers`).
    entropy_threshold : float
        Normalised entropy above which the DEJ is uncertain.
    entropy_band_um : float
        Half-height of the band around the DEJ over which the entropy is averaged.
    uncertain_flag_fraction : float
        Flag the volume when more than this fraction of the DEJ area is uncertain.
    crop_margin_um : float or None
        Segment most sections only down to the deepest DEJ of a pilot pass (one
        section in 16, full depth) plus this margin; None segments every section at
        full depth.
    engine : {'torch', 'onnx'}
    batch_size : int
        Sections per segmentation batch.
    n_overlays : int
        Sections saved as overlay images.
    """

    section_step: int = 1
    depth_stop_um: float = 70.0
    depth_step_um: float = 1.0
    n_tiles: int = 3
    tile_size_um: float = 400.0
    outlier_window_um: float = 11.0
    outlier_um: float = 6.0
    entropy_threshold: float = 0.5
    entropy_band_um: float = 5.0
    uncertain_flag_fraction: float = 0.10
    crop_margin_um: float | None = 60.0
    engine: str = "torch"
    batch_size: int = 4
    n_overlays: int = 3

    def __post_init__(self) -> None:
        if int(self.section_step) < 1:
            raise InputError(f"section_step must be ≥ 1, got {self.section_step}")
        if not (self.depth_stop_um > 0 and self.depth_step_um > 0):
            raise InputError("depth_stop_um and depth_step_um must be positive")
        if int(self.n_tiles) < 1:
            raise InputError(f"n_tiles must be ≥ 1, got {self.n_tiles}")
        if self.engine not in ("torch", "onnx"):
            raise InputError(f"engine must be 'torch' or 'onnx', got {self.engine!r}")
        if not 0 <= self.entropy_threshold <= 1:
            raise InputError(f"entropy_threshold must be in [0, 1], got {self.entropy_threshold}")
        if self.crop_margin_um is not None and not self.crop_margin_um >= 0:
            raise InputError(f"crop_margin_um must be ≥ 0 or None, got {self.crop_margin_um}")
        if int(self.batch_size) < 1 or int(self.n_overlays) < 0:
            raise InputError("batch_size must be ≥ 1 and n_overlays ≥ 0")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- monitoring


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class _Stages:
    """Wall and CPU time per stage and, with ``track_memory``, the peak RSS during each."""

    track_memory: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        peak = [_rss_mb()] if self.track_memory else None
        stop = threading.Event()
        sampler = None
        if self.track_memory:

            def sample() -> None:
                while not stop.wait(0.01):
                    peak[0] = max(peak[0], _rss_mb())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu
            if sampler is not None:
                stop.set()
                sampler.join()
                peak[0] = max(peak[0], _rss_mb())
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), peak[0])


# --------------------------------------------------------------------------- helpers


def _release_pages(data) -> None:
    """Let the OS drop the pages of a memory-mapped volume that this process touched.

    Reading every section of a memory-mapped volume maps the whole file into the
    process; the pages are clean copies of the file, so dropping them costs nothing
    but a re-read from the page cache if they are needed again. Keeps the resident
    memory of a streamed analysis independent of the volume size. No-op for arrays
    that are not memory-mapped (or where ``madvise`` is unavailable).
    """
    import mmap

    base = data
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if base is not None and advice is not None:
        try:
            base.madvise(advice)
        except (OSError, ValueError):
            pass


def _trim_heap() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``; no-op elsewhere).

    Inference frees hundreds of MB of small tensors; glibc keeps them in its arenas,
    where they still count as resident memory for the later stages.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_info(model, kind: str) -> dict[str, Any]:
    manifest = getattr(model, "manifest", {}) or {}
    return {
        "task": kind,
        "path": None if getattr(model, "path", None) is None else str(model.path),
        "weights_sha256": manifest.get("weights_sha256"),
        "skinoct_version": manifest.get("skinoct_version"),
        "synthetic_training_data": bool(
            (manifest.get("training") or {}).get("synthetic_data")
            or "phantom" in json.dumps(manifest.get("provenance", "")).lower()
        ),
    }


def model_fingerprint(*, layers_model=None, matrix_model=None, **_ignored) -> dict[str, str | None]:
    """Identity of the models :func:`analyze_volume` would use: their weights' SHA-256.

    Read from the model manifests (``model.json``) without loading the weights; the
    bundled models when ``None``. Used by :func:`skinoct.study.run_study` so that a
    study re-run with other models recomputes every subject.
    """
    from skinoct.models import MANIFEST_NAME, bundled_model_dir

    out: dict[str, str | None] = {}
    for kind, given in (("layers", layers_model), ("matrix", matrix_model)):
        if given is not None and not isinstance(given, (str, Path)):
            out[kind] = getattr(given, "manifest", {}).get("weights_sha256")
            continue
        try:
            folder = bundled_model_dir(kind) if given is None else Path(given)
            if folder.is_file():
                folder = folder.parent
            manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
            out[kind] = manifest.get("weights_sha256")
        except (OSError, ValueError, InputError):
            out[kind] = None  # the analysis itself reports the missing model
    return out


def read_dej(dej, shape_yx: tuple[int, int], *, path_hint=None) -> np.ndarray | float:
    """A user-given DEJ: a depth in µm, or a file holding a (y, x) surface in µm.

    Raises
    ------
    InputError
        A file that is missing, unreadable or of the wrong shape; a negative or
        non-finite depth.
    """
    if isinstance(dej, (int, float, np.floating, np.integer)):
        value = float(dej)
        if not math.isfinite(value) or value < 0:
            raise InputError(f"DEJ depth must be a number ≥ 0 µm, got {dej}", path=path_hint)
        return value
    if isinstance(dej, np.ndarray):
        surface = np.asarray(dej, dtype=np.float64)
        where = path_hint
    else:
        where = Path(dej)
        if not where.is_file():
            raise InputError("DEJ file not found", path=where)
        if where.suffix.lower() == ".npy":
            surface = np.load(where, allow_pickle=False).astype(np.float64)
        else:
            from skinoct.io import read_image

            surface = np.asarray(read_image(where, axes="yx").data, dtype=np.float64)
    if surface.shape != tuple(shape_yx):
        raise InputError(
            f"DEJ surface has shape {surface.shape}; the volume's en-face shape is "
            f"{tuple(shape_yx)} (y, x)",
            path=where,
        )
    if not np.isfinite(surface).any():
        raise InputError("DEJ surface holds no finite depth", path=where)
    return surface


def _versions() -> dict[str, str]:
    out = {"skinoct": __version__}
    for name in ("numpy", "torch", "monai", "onnxruntime", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------------- main


def analyze_volume(
    volume,
    *,
    out_dir: str | Path | None = None,
    dej=None,
    layers_model=None,
    matrix_model=None,
    spacing_um=None,
    track_memory: bool = False,
    **options,
) -> dict[str, Any]:
    """Analyse one volume: layer surfaces, 3-D morphometry, dermal quality profile.

    Parameters
    ----------
    volume : str, Path or Image
        A ``'zyx'`` volume file (memory-mapped when uncompressed) or an
        :class:`~skinoct.io.Image`.
    out_dir : str or Path, optional
        Where to write the outputs (see the module docstring); nothing is written
        when None.
    dej : float, str, Path or ndarray, optional
        Use this DEJ (depth in µm, or a (y, x) surface in µm as ``.npy`` / image file)
        for the dermal tiles instead of the segmented one (seed 002's manual DEJ).
        The layer metrics still come from the segmentation.
    layers_model, matrix_model : str, Path or loaded model, optional
        Model directories (default: the bundled phantom-trained models).
    spacing_um : sequence of float, optional
        Overrides the volume's spacing ``(dz, dy, dx)``.
    track_memory : bool
        Record the peak resident memory of each stage (``peak_rss_mb``).
    **options
        Fields of :class:`AnalysisOptions` (``section_step``, ``depth_stop_um``, …).

    Returns
    -------
    dict
        ``score`` (mean over depths), ``profile`` (``depth_um``, ``score``, ``sd``,
        ``n_tiles``), ``metrics`` (flat layer metrics for the study table),
        ``morphometry`` (all metrics), ``dej`` (source, coverage, outliers,
        uncertainty), ``flags``, ``versions``, ``input`` (path, SHA-256, shape,
        spacing), ``options``, ``images`` (paths relative to ``out_dir``),
        ``timings_s`` (wall), ``cpu_s`` (CPU time of all threads) and
        ``peak_rss_mb`` (per stage).

    Raises
    ------
    InputError
        Unreadable volume, bad options or DEJ, a volume in which no DEJ is found,
        or a field smaller than one tile.
    ModelError
        A model directory that is not a valid model.

    Examples
    --------
    >>> result = analyze_volume("subject01.ome.tif", out_dir="out/subject01")  # doctest: +SKIP
    >>> result["score"], len(result["profile"]["depth_um"])  # doctest: +SKIP
    (2.71, 70)
    """
    from skinoct.io import Image, read_volume

    opts = AnalysisOptions(**options)
    stages = _Stages(track_memory=track_memory)
    with stages("read"):
        if isinstance(volume, Image):
            image = volume
            if image.axes != "zyx":
                raise InputError(
                    f"expected a 'zyx' volume, got axes {image.axes!r}", path=image.path
                )
            if spacing_um is not None:
                image = image.with_data(image.data, spacing_um=spacing_um)
        else:
            image = read_volume(volume, mmap=True, spacing_um=spacing_um, check_orientation=True)
        if image.path is not None and Path(image.path).is_file():
            input_sha = _sha256(Path(image.path))
        elif image.path is not None and Path(image.path).is_dir():  # OME-Zarr: its files
            from skinoct.io import tree_sha256

            input_sha = tree_sha256(image.path)
        else:
            input_sha = hashlib.sha256(np.ascontiguousarray(image.data).tobytes()).hexdigest()
        nz, ny, nx = image.shape
        dz, dy, dx = image.spacing_um
        given_dej = None if dej is None else read_dej(dej, (ny, nx), path_hint=image.path)

    layers, matrix = _load_models(layers_model, matrix_model)
    with stages("segmentation"):
        seg = _segment(image, layers, opts)
        _trim_heap()
    with stages("morphometry"):
        morph = _morphometry(image, seg, opts)
        _trim_heap()
    dej_for_tiles = morph["dej_for_tiles"] if given_dej is None else given_dej
    with stages("tiles"):
        tiles, index, dropped = _tiles(image, dej_for_tiles, opts)
        _release_pages(image.data)
    with stages("grading"):
        profile, score = _grade(tiles, index, matrix, opts)
    del tiles
    _trim_heap()

    flags = _flags(morph, profile, dropped, opts, given=given_dej is not None)
    analysis = {
        "input": {
            "path": None if image.path is None else str(image.path),
            "sha256": input_sha,
            "shape": [nz, ny, nx],
            "spacing_um": [dz, dy, dx],
            "spacing_source": image.spacing_source,
            "dtype": str(image.data.dtype),
        },
        "options": opts.to_dict(),
        "score": score,
        "profile": profile,
        "metrics": morph["table"],
        "morphometry": morph["metrics"],
        "dej": {
            **morph["dej_summary"],
            "source": "given" if given_dej is not None else "segmentation",
        },
        "flags": flags,
        "versions": {
            **_versions(),
            "layers_model": _model_info(layers, "layers"),
            "matrix_model": _model_info(matrix, "matrix"),
        },
    }
    images: dict[str, str] = {}
    if out_dir is not None:
        with stages("outputs"):
            images = _write_outputs(Path(out_dir), image, seg, morph, analysis)
    return {
        **analysis,
        "images": images,
        "timings_s": {k: round(v, 3) for k, v in stages.seconds.items()},
        "cpu_s": {k: round(v, 3) for k, v in stages.cpu_seconds.items()},
        "peak_rss_mb": {k: round(v, 1) for k, v in stages.peak_mb.items()},
    }


analyze_volume.fingerprint = model_fingerprint  # type: ignore[attr-defined]


_MODELS: dict[tuple[str, str], Any] = {}


def _load_models(layers_model, matrix_model):
    """Load (or reuse, within this process) the two models; bundled ones for None.

    A study worker analyses many volumes: each model directory is loaded and its
    SHA-256 verified once per process, and again if its manifest changes.
    """
    from skinoct.layers import LayersModel, load_layers_model
    from skinoct.matrix import MatrixModel, load_matrix_model

    def cached(kind, given, cls, loader):
        if isinstance(given, cls):
            return given
        key = (kind, str(Path(given).resolve()) if given is not None else "<bundled>")
        stamp = model_fingerprint(**{f"{kind}_model": given}).get(kind)
        hit = _MODELS.get(key)
        if hit is None or hit[0] != stamp or stamp is None:
            _MODELS[key] = (stamp, loader(given))
        return _MODELS[key][1]

    return (
        cached("layers", layers_model, LayersModel, load_layers_model),
        cached("matrix", matrix_model, MatrixModel, load_matrix_model),
    )


# --------------------------------------------------------------------------- stages


def _segment(image, model, opts: AnalysisOptions) -> dict[str, Any]:
    """Segment the sections; return per-section boundaries and DEJ entropy, and overlays.

    With ``opts.crop_margin_um``, a pilot pass segments about one section in 16 at full
    depth; the other sections are then segmented only down to the deepest DEJ the
    pilot found plus the margin (the tissue below is dermis; the model's time goes
    with the section's area). Overlays show pilot sections, at full depth.
    """
    from skinoct.study.surfaces import section_rows

    data = image.data
    nz, ny, nx = data.shape
    dz, _, dx = image.spacing_um
    rows = section_rows(ny, int(opts.section_step))
    out = {
        "bounds": {name: np.full((rows.size, nx), np.nan) for name in _BOUNDARIES},
        "dej_entropy": np.full((rows.size, nx), np.nan),
        "overlays": {},
    }
    if opts.crop_margin_um is None:
        pilot = np.arange(rows.size)
    else:
        n_pilot = min(rows.size, max(3, rows.size // 16))
        pilot = np.unique(np.linspace(0, rows.size - 1, n_pilot).round().astype(int))
    keep: set[int] = set()
    if opts.n_overlays:
        picks = np.linspace(0, pilot.size - 1, int(opts.n_overlays)).round().astype(int)
        keep = {int(rows[pilot[i]]) for i in np.unique(picks)}
    _segment_rows(data, rows, pilot, nz, model, (dz, dx), opts, out, keep)
    depth_rows = nz
    rest = np.setdiff1d(np.arange(rows.size), pilot)
    if rest.size:
        deepest = (
            np.nanmax(out["bounds"]["dej"][pilot])
            if np.isfinite(out["bounds"]["dej"][pilot]).any()
            else np.nan
        )
        if np.isfinite(deepest):
            depth_rows = int(min(nz, math.ceil((deepest + opts.crop_margin_um) / dz) + 1))
        _segment_rows(data, rows, rest, depth_rows, model, (dz, dx), opts, out, keep)
    out["rows"] = rows
    out["segmented_depth_um"] = depth_rows * dz
    return out


_BOUNDARIES = ("surface", "sc_junction", "dej")


def _segment_rows(data, rows, which, depth_rows, model, spacing, opts, out, keep) -> None:
    """Segment sections ``rows[which]`` down to ``depth_rows``; fill ``out`` in place."""
    from skinoct.layers import segment_sections
    from skinoct.morphometry import dej_entropy as section_dej_entropy
    from skinoct.morphometry import extract_boundaries

    dz, dx = spacing
    batch = int(opts.batch_size)
    for start in range(0, which.size, batch):
        idx = which[start : start + batch]
        ys = rows[idx]
        stack = np.ascontiguousarray(np.asarray(data[:depth_rows, ys, :]).transpose(1, 0, 2))
        result = segment_sections(
            stack, model, spacing_um=spacing, engine=opts.engine, batch_size=batch
        )
        for i, (k, y) in enumerate(zip(idx, ys, strict=True)):
            labels = result.labels[i]
            if not (labels > 0).any():  # a section without skin: all boundaries NaN
                continue
            b = extract_boundaries(labels, spacing, smoothing_um=0)
            for name in _BOUNDARIES:
                out["bounds"][name][k] = b[name]
            out["dej_entropy"][k] = section_dej_entropy(
                result.entropy[i], b.dej, dz, band_um=opts.entropy_band_um
            )
            if int(y) in keep:
                drawn = {name: b[name] for name in _BOUNDARIES}
                out["overlays"][int(y)] = (stack[i].copy(), drawn, result.entropy[i].copy())
        del stack, result
        _release_pages(data)


def _morphometry(image, seg: dict, opts: AnalysisOptions) -> dict[str, Any]:
    from skinoct.morphometry import flatten_metrics, measure_volume, uncertain_area
    from skinoct.study.surfaces import (
        crop_depth,
        fill_nearest,
        interpolate_rows,
        labels_from_surfaces,
        remove_outliers,
    )

    nz, ny, nx = image.shape
    dz, dy, dx = image.spacing_um
    rows = seg["rows"]
    surfaces, outliers = {}, {}
    for name, values in seg["bounds"].items():
        full = interpolate_rows(values, rows, ny)
        surfaces[name], outliers[name] = remove_outliers(
            full, (dy, dx), window_um=opts.outlier_window_um, threshold_um=opts.outlier_um
        )
    dej = surfaces["dej"]
    dej_coverage = float(np.isfinite(dej).mean())
    if dej_coverage == 0:
        raise InputError(
            "no DEJ found in the volume (the layer model finds no dermis)", path=image.path
        )
    # Label volume from the surfaces, cut 10 µm below the deepest DEJ and 5 µm above the
    # highest surface (air above it); boundary depths are shifted back by ``top_um``.
    n_crop = crop_depth(dej, dz, nz)
    highest = np.nanmin(surfaces["surface"]) if np.isfinite(surfaces["surface"]).any() else 0.0
    z0 = int(max(0, min(n_crop - 2, math.floor((highest - 5.0) / dz))))
    top_um = z0 * dz
    labels = labels_from_surfaces(
        surfaces["surface"] - top_um,
        surfaces["sc_junction"] - top_um,
        dej - top_um,
        dz,
        n_crop - z0,
    )
    metrics = measure_volume(labels, (dz, dy, dx), entropy_threshold=opts.entropy_threshold)
    del labels
    if top_um:  # depths from the top of the volume again
        b = metrics.boundaries
        shifted = {name: b[name] + top_um for name in ("surface", "sc_junction", "dej")}
        raw = {name: value + top_um for name, value in b.raw.items()}
        metrics = replace(metrics, boundaries=replace(b, **shifted, raw=raw))
    entropy_map = interpolate_rows(seg["dej_entropy"], rows, ny)
    entropy_map[~np.isfinite(metrics.dej_surface_um)] = np.nan
    uncertain = uncertain_area(
        np.nan_to_num(entropy_map, nan=0.0),
        (dy, dx),
        threshold=opts.entropy_threshold,
        min_length_um=20.0,
    )
    valid = np.isfinite(entropy_map)
    fraction = float(uncertain[valid].sum() / valid.sum()) if valid.any() else math.nan
    entropy_mean = float(np.nanmean(entropy_map)) if valid.any() else math.nan
    nested = metrics.to_dict()
    nested.pop("spacing_um", None)
    nested["dej_entropy_mean"] = entropy_mean
    nested["dej_uncertain_area_fraction"] = fraction
    flat = flatten_metrics(nested)
    table = {key: flat.get(key) for key in TABLE_METRICS}
    smoothed_dej = np.asarray(metrics.dej_surface_um, dtype=np.float64)
    filled = ~np.isfinite(smoothed_dej)
    summary = {
        "coverage": float(np.isfinite(smoothed_dej).mean()),
        "filled_fraction_for_tiles": float(filled.mean()),
        "outlier_fraction": float(outliers["dej"].sum() / max(1, np.isfinite(dej).sum())),
        "entropy_mean": entropy_mean,
        "uncertain_area_fraction": fraction,
        "sections_segmented": int(rows.size),
        "segmented_depth_um": float(seg["segmented_depth_um"]),
        "depth_mean_um": float(np.nanmean(smoothed_dej)),
    }
    return {
        "metrics": nested,
        "table": table,
        "volume_metrics": metrics,
        "surfaces": {
            "surface": metrics.boundaries.surface,
            "sc_junction": metrics.boundaries.sc_junction,
            "dej": smoothed_dej,
        },
        "entropy_map": entropy_map,
        "uncertain": uncertain,
        "dej_for_tiles": fill_nearest(smoothed_dej),
        "dej_summary": summary,
    }


def _tiles(image, dej, opts: AnalysisOptions):
    from skinoct.matrix import profile_tiles

    depths = np.arange(0.0, float(opts.depth_stop_um) - 1e-9, float(opts.depth_step_um))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiles, index = profile_tiles(
            image, dej, depths_um=depths, n_tiles=int(opts.n_tiles), tile_size_um=opts.tile_size_um
        )
    for w in caught:
        if "left out" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    index = index.assign(depth_um=index["depth_um"].astype(float))
    index.attrs["depths"] = depths
    return tiles, index, int(index.attrs.get("dropped", 0))


def _grade(tiles, index, model, opts: AnalysisOptions):
    from skinoct.matrix import expected_grade, predict_tiles

    depths = index.attrs["depths"]
    if len(tiles):
        probs = predict_tiles(tiles, model, engine=opts.engine)
        scores = expected_grade(probs, classes=model.classes)
    else:
        probs = np.zeros((0, len(model.classes)), np.float32)
        scores = np.zeros(0)
    tile_depth = index["depth_um"].to_numpy(float)
    mean, sd, count = [], [], []
    grade_p = {f"p_grade_{g}": [] for g in model.classes}
    for d in depths:
        sel = np.isclose(tile_depth, d)
        n = int(sel.sum())
        count.append(n)
        mean.append(float(scores[sel].mean()) if n else math.nan)
        sd.append(float(scores[sel].std(ddof=1)) if n > 1 else math.nan)
        for j, g in enumerate(model.classes):
            grade_p[f"p_grade_{g}"].append(float(probs[sel, j].mean()) if n else math.nan)
    finite = [m for m in mean if math.isfinite(m)]
    score = float(np.mean(finite)) if finite else math.nan
    profile = {
        "depth_um": [float(d) for d in depths],
        "score": mean,
        "sd": sd,
        "n_tiles": count,
        **grade_p,
    }
    return profile, score


def _flags(morph, profile, dropped: int, opts: AnalysisOptions, *, given: bool) -> list[str]:
    s = morph["dej_summary"]
    flags = []
    if (
        math.isfinite(s["uncertain_area_fraction"])
        and s["uncertain_area_fraction"] > opts.uncertain_flag_fraction
    ):
        flags.append(
            f"uncertain DEJ: {100 * s['uncertain_area_fraction']:.0f}% of the DEJ area has "
            f"entropy > {opts.entropy_threshold:g}"
        )
    if s["coverage"] < 0.9:
        flags.append(f"DEJ found over {100 * s['coverage']:.0f}% of the field only")
    if s["outlier_fraction"] > 0.05:
        flags.append(
            f"{100 * s['outlier_fraction']:.0f}% of DEJ positions were outliers (replaced)"
        )
    missing = sum(1 for n in profile["n_tiles"] if n == 0)
    if missing:
        flags.append(
            f"{missing} of {len(profile['n_tiles'])} depths without tiles (volume too shallow?)"
        )
    elif dropped:
        flags.append(f"{dropped} tile(s) left out (outside the volume)")
    return flags


# --------------------------------------------------------------------------- outputs


def _write_outputs(out_dir: Path, image, seg, morph, analysis) -> dict[str, str]:
    import pandas as pd

    from skinoct.io import atomic_path, write_json
    from skinoct.layers import boundary_overlay, entropy_overlay, write_rgb_png
    from skinoct.study.figures import profile_figure, save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    dz, dy, dx = image.spacing_um
    write_json(out_dir / "analysis.json", analysis)
    prof = pd.DataFrame(analysis["profile"])
    with atomic_path(out_dir / "profile.csv") as tmp:
        prof.to_csv(tmp, index=False, float_format="%.6g")

    metrics = morph["volume_metrics"]
    maps = {
        "dej_um": morph["surfaces"]["dej"],
        "surface_um": morph["surfaces"]["surface"],
        "sc_junction_um": morph["surfaces"]["sc_junction"],
        "epidermis_thickness_um": metrics.epidermis_thickness_map_um,
        "stratum_corneum_thickness_um": metrics.stratum_corneum_thickness_map_um,
        "viable_epidermis_thickness_um": metrics.viable_epidermis_thickness_map_um,
        "dej_entropy": morph["entropy_map"],
        "dej_uncertain": morph["uncertain"],
    }
    for name, array in maps.items():
        with atomic_path(out_dir / "maps" / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array, dtype=bool if array.dtype == bool else np.float32))

    images: dict[str, str] = {}
    from skinoct.morphometry.figures import plot_volume_maps

    fig = plot_volume_maps(metrics, title="thickness and DEJ maps")
    save_figure(fig, out_dir / "maps.png", dpi=90)
    _close(fig)
    images["thickness and DEJ maps"] = "maps.png"
    fig = _uncertainty_figure(morph["entropy_map"], morph["uncertain"], (dy, dx))
    save_figure(fig, out_dir / "uncertainty.png", dpi=90)
    images["DEJ uncertainty map"] = "uncertainty.png"

    for y, (section, bounds, entropy) in sorted(seg["overlays"].items()):
        top = boundary_overlay(section, bounds, (dz, dx))
        bottom = entropy_overlay(section, entropy)
        rgb = np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom])
        rel = f"overlays/section_y{y:04d}.png"
        write_rgb_png(out_dir / rel, rgb)
        images.setdefault("section overlay (boundaries / entropy)", rel)

    p = analysis["profile"]
    fig = profile_figure(
        p["depth_um"],
        p["score"],
        sd=p["sd"],
        mean_score=analysis["score"],
        title="Dermal quality profile",
    )
    save_figure(fig, out_dir / "profile.png", dpi=90)
    images["profile"] = "profile.png"
    return images


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _uncertainty_figure(entropy_map, uncertain, spacing_yx):
    from matplotlib.figure import Figure

    from skinoct.layers import ENTROPY_COLORMAP

    ny, nx = entropy_map.shape
    dy, dx = spacing_yx
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(
        entropy_map, cmap=ENTROPY_COLORMAP, vmin=0, vmax=1, extent=(0, nx * dx, ny * dy, 0)
    )
    if uncertain is not None and uncertain.any():
        ax.contour(
            (np.arange(nx) + 0.5) * dx,
            (np.arange(ny) + 0.5) * dy,
            uncertain.astype(float),
            levels=[0.5],
            colors="white",
            linewidths=1,
        )
    fig.colorbar(im, ax=ax, label="DEJ entropy (normalised)")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title("Entropy along the DEJ (white: uncertain areas)", fontsize=10)
    return fig
