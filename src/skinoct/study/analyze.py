"""``analyze_volume``: one LC-OCT volume → layers, morphometry, dermal quality profile.

The path from a raw volume to the numbers a study needs (seed 000 + seed 002):

1. **read** — the volume is memory-mapped (``skinoct.io.read_volume(mmap=True)``);
   nothing volume-sized is loaded. Its SHA-256 is computed in a background thread
   during the morphometry.
2. **segmentation** — :func:`skinoct.layers.segment_volume`: the vertical sections
   ``volume[:, y, :]`` (every ``section_step``-th, in batches) give the surface,
   SC-junction and DEJ depths per column and the entropy along the DEJ.
3. **morphometry** — the section boundaries are interpolated between sections
   (:func:`skinoct.morphometry.interpolate_rows`), outliers (more than ``outlier_um``
   from the median of their ``outlier_window_um`` neighbourhood) replaced
   (:func:`~skinoct.morphometry.remove_outliers`), sampled on the volume's depth grid
   (:func:`~skinoct.morphometry.surfaces_on_grid`) and measured
   (:func:`~skinoct.morphometry.measure_surfaces`): thickness maps, DEJ undulation,
   papillae; the DEJ entropy map gives the uncertain DEJ area.
4. **tiles + grading** — :func:`skinoct.matrix.grade_profile`: for every 1-µm layer
   from the DEJ down to ``depth_stop_um`` (relative to the *local* DEJ), ``n_tiles``
   tiles of 400 × 400 µm (slices z−1, z, z+1 µm as RGB; seed 002 §2.3.2) → expected
   score Σ p·g per tile → mean score per depth (the profile) → the volume's score.

Outputs (in ``out_dir``): ``analysis.json``, ``profile.csv``, ``maps/*.npy`` and
``maps.png``, ``uncertainty.png``, ``overlays/section_y*.png``, ``profile.png``.
``analysis.json`` holds no timestamps or timings, so a re-run on the same input
writes the same file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinoct._version import __version__
from skinoct.errors import InputError
from skinoct.models import default_threads, resolve_engine
from skinoct.study._models import load_models, model_fingerprint, model_info
from skinoct.study._resources import Stages, release_pages, trim_heap

__all__ = ["AnalysisOptions", "analyze_volume", "model_fingerprint"]

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
        Boundary outlier removal (see :func:`skinoct.morphometry.remove_outliers`).
    entropy_threshold : float or None
        Excess DEJ entropy above which the DEJ is uncertain
        (:func:`skinoct.morphometry.uncertain_dej_area`); None: the layer model's
        calibrated threshold (``model.json`` ``uncertainty``).
    entropy_band_um : float or None
        Half-height (µm) of the band around the DEJ over which the entropy is
        averaged; None: the band the layer model's threshold was calibrated at
        (``model.json`` ``uncertainty``).
    min_segment_um : float or None
        Uncertain DEJ areas smaller than this length squared are not flagged; None:
        the length the layer model's threshold was calibrated at.
    uncertain_flag_fraction : float
        Flag the volume when more than this fraction of the DEJ area is uncertain.
    crop_margin_um : float or None
        Segment most sections only down to the deepest DEJ of a pilot pass (one
        section in 16, full depth) plus this margin; None segments every section at
        full depth.
    engine : {'auto', 'torch', 'onnx', 'openvino'}
        ``'auto'``: the fastest engine installed for this CPU; the engines that ran are
        recorded in ``analysis.json`` (``versions.engines``).
    batch_size : int
        Sections per segmentation batch.
    n_overlays : int
        Sections saved as overlay images.
    dej_margin_um : float
        Depths whose tiles reach less than this below the DEJ (their shallowest slice,
        1 µm above the depth) straddle it and are not graded: the profile starts at
        3 µm by default (see :func:`skinoct.matrix.grade_profile`; −1 grades all).
    """

    section_step: int = 1
    depth_stop_um: float = 70.0
    depth_step_um: float = 1.0
    n_tiles: int = 3
    tile_size_um: float = 400.0
    outlier_window_um: float = 11.0
    outlier_um: float = 6.0
    entropy_threshold: float | None = None
    entropy_band_um: float | None = None
    min_segment_um: float | None = None
    uncertain_flag_fraction: float = 0.10
    crop_margin_um: float | None = 60.0
    engine: str = "auto"
    batch_size: int = 4
    n_overlays: int = 3
    dej_margin_um: float = 2.0

    def __post_init__(self) -> None:
        if int(self.section_step) < 1:
            raise InputError(f"section_step must be ≥ 1, got {self.section_step}")
        if not (self.depth_stop_um > 0 and self.depth_step_um > 0):
            raise InputError("depth_stop_um and depth_step_um must be positive")
        if int(self.n_tiles) < 1:
            raise InputError(f"n_tiles must be ≥ 1, got {self.n_tiles}")
        if self.engine not in ("auto", "torch", "onnx", "openvino"):
            raise InputError(
                f"engine must be 'auto', 'torch', 'onnx' or 'openvino', got {self.engine!r}"
            )
        if self.entropy_threshold is not None and not 0 <= self.entropy_threshold <= 1:
            raise InputError(f"entropy_threshold must be in [0, 1], got {self.entropy_threshold}")
        for name in ("entropy_band_um", "min_segment_um"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a finite number ≥ 0 or None, got {value}")
        if self.crop_margin_um is not None and not self.crop_margin_um >= 0:
            raise InputError(f"crop_margin_um must be ≥ 0 or None, got {self.crop_margin_um}")
        if int(self.batch_size) < 1 or int(self.n_overlays) < 0:
            raise InputError("batch_size must be ≥ 1 and n_overlays ≥ 0")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _versions() -> dict[str, str]:
    out = {"skinoct": __version__}
    for name in ("numpy", "torch", "monai", "onnxruntime", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


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
        Use this DEJ (depth in µm, or a (y, x) surface in µm as ``.npy`` / image file;
        see :func:`skinoct.matrix.read_dej`) for the dermal tiles instead of the
        segmented one (seed 002's manual DEJ). The layer metrics still come from the
        segmentation.
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
    from skinoct.io import provenance_banner
    from skinoct.layers import segment_volume
    from skinoct.matrix import grade_profile, read_dej

    opts = AnalysisOptions(**options)
    stages = Stages(track_memory=track_memory)
    with stages("read"):
        image = _read(volume, spacing_um)
        # the orientation check read every page of a mapped volume: 0.7 GB resident
        # (a float32 default volume) until the first segmentation batch otherwise
        release_pages(image.data)
        given_dej = None
        if dej is not None:
            given_dej = read_dej(dej, shape_yx=image.shape[1:], path=image.path)
    layers, matrix = load_models(layers_model, matrix_model)
    flag = _dej_flag(layers, opts)
    if out_dir is not None:
        # matplotlib's first import (0.75 s, holding the GIL) happens beside the
        # segmentation, whose workers spend most of their time without the GIL, not
        # beside the morphometry or the tiles, whose NumPy calls keep asking for it
        # (not a daemon: an exit during matplotlib's first font-cache build would leave
        # its lock file behind)
        threading.Thread(target=_import_figure_modules, name="skinoct-import").start()
    with stages("segmentation"):
        seg = segment_volume(
            image.data,
            layers,
            spacing_um=image.spacing_um,
            section_step=opts.section_step,
            crop_margin_um=opts.crop_margin_um,
            engine=opts.engine,
            batch_size=opts.batch_size,
            entropy_band_um=flag.band_um,
            n_overlays=opts.n_overlays,
            after_batch=lambda: release_pages(image.data),
        )
        trim_heap()
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        from skinoct.study._outputs import (
            remove_overlays,
            write_map_outputs,
            write_overlays,
            write_profile_outputs,
        )
    with ThreadPoolExecutor(1, thread_name_prefix="skinoct-outputs") as pool:
        # Work off the critical path, on the core that the single-threaded stages leave
        # idle: the input's hash (0.6 s for the default volume) and the overlays need
        # only the segmentation, so they run during the morphometry; the maps and
        # figures need nothing from grading, so they run during the tiles and grading.
        input_sha = pool.submit(_input_sha256, image)
        overlays = None if out is None else pool.submit(write_overlays, out, image, seg)
        with stages("morphometry"):
            try:
                morph = _morphometry(image, seg, opts, flag=flag)
            except BaseException:
                input_sha.cancel()
                if overlays is not None:  # a volume that fails leaves no overlays
                    overlays.cancel()
                    wait([overlays])
                    remove_overlays(out, seg)
                raise
            trim_heap()
        maps = None if out is None else pool.submit(write_map_outputs, out, image, morph)
        profile = grade_profile(
            image,
            morph["dej_for_tiles"] if given_dej is None else given_dej,
            matrix,
            depth_stop_um=opts.depth_stop_um,
            depth_step_um=opts.depth_step_um,
            n_tiles=opts.n_tiles,
            tile_size_um=opts.tile_size_um,
            engine=opts.engine,
            dej_margin_um=opts.dej_margin_um,
            stage=_releasing(stages, image.data),
        )
        models = (layers, matrix)
        analysis = _record(image, input_sha.result(), opts, morph, profile, models, given_dej)
        analysis["provenance"] = provenance_banner(analysis["versions"])  # plain words, or None
        images: dict[str, str] = {}
        if out is not None:
            # "outputs" times what is left on the critical path: the wait for the
            # background writer, then the profile files (analysis.json only once the
            # maps and overlays are on disk)
            with stages("outputs"):
                # maps first, then overlays: the order of the report's gallery
                images = maps.result()  # re-raises the writer's error
                images.update(overlays.result())
                images.update(write_profile_outputs(out, analysis))
    return {
        **analysis,
        "images": images,
        "timings_s": {k: round(v, 3) for k, v in stages.seconds.items()},
        "cpu_s": {k: round(v, 3) for k, v in stages.cpu_seconds.items()},
        "peak_rss_mb": {k: round(v, 1) for k, v in stages.peak_mb.items()},
    }


analyze_volume.fingerprint = model_fingerprint  # type: ignore[attr-defined]


def _releasing(stages: Stages, data):
    """``stages`` for :func:`~skinoct.matrix.grade_profile`: after each of its stages
    (tiles, grading) the pages of the mapped volume that the tiles touched (≈ 0.26 GB of
    the float32 default volume) and the freed heap go back to the OS."""

    @contextmanager
    def stage(name: str):
        with stages(name):
            yield
        release_pages(data)
        trim_heap()

    return stage


def _record(image, input_sha, opts, morph, profile, models, given_dej) -> dict[str, Any]:
    """The content of ``analysis.json`` (no timings: a re-run writes the same file)."""
    layers, matrix = models
    return {
        "input": {
            "path": None if image.path is None else str(image.path),
            "sha256": input_sha,
            "shape": list(image.shape),
            "spacing_um": list(image.spacing_um),
            "spacing_source": image.spacing_source,
            "dtype": str(image.data.dtype),
        },
        "options": opts.to_dict(),
        "score": profile.volume_score,
        "profile": profile.to_dict(),
        "profile_start_um": profile.start_um,
        "metrics": morph["table"],
        "morphometry": morph["metrics"],
        "dej": {**morph["dej_summary"], "source": "segmentation" if given_dej is None else "given"},
        "flags": _flags(morph, profile, opts),
        "versions": {
            **_versions(),
            "layers_model": model_info(layers, "layers"),
            "matrix_model": model_info(matrix, "matrix"),
            # the engines that ran (``'auto'`` resolved; the layers model runs on the CPU)
            "engines": {
                "layers": resolve_engine(opts.engine, task="layers", device="cpu"),
                "matrix": matrix.engine_for(opts.engine)
                if hasattr(matrix, "engine_for")  # a stand-in model (tests)
                else resolve_engine(opts.engine, task="matrix", device="cpu"),
            },
        },
    }


def _import_figure_modules() -> None:
    """Import what the outputs draw with (failures surface where they are used)."""
    with suppress(Exception):
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401
        from matplotlib import colormaps  # noqa: F401


def _read(volume, spacing_um):
    """The volume, memory-mapped when it is a file."""
    from skinoct.io import Image, read_volume

    if isinstance(volume, Image):
        image = volume
        if image.axes != "zyx":
            raise InputError(f"expected a 'zyx' volume, got axes {image.axes!r}", path=image.path)
        if spacing_um is not None:
            image = image.with_data(image.data, spacing_um=spacing_um)
        return image
    return read_volume(volume, mmap=True, spacing_um=spacing_um, check_orientation=True)


def _input_sha256(image) -> str:
    """SHA-256 of the input: its file, an OME-Zarr's files, else the array's bytes."""
    from skinoct.models import sha256_file

    if image.path is not None and Path(image.path).is_file():
        return sha256_file(image.path)
    if image.path is not None and Path(image.path).is_dir():  # OME-Zarr: hash its files
        from skinoct.io import tree_sha256

        return tree_sha256(image.path)
    # the bytes of a C-contiguous copy, hashed without one more volume-sized copy
    return hashlib.sha256(memoryview(np.ascontiguousarray(image.data)).cast("B")).hexdigest()


def _dej_flag(layers, opts: AnalysisOptions):
    """The DEJ flag's settings (``DejFlag``): the options', else the model's calibration."""
    from skinoct.layers import dej_flag_settings

    return dej_flag_settings(
        layers,
        threshold=opts.entropy_threshold,
        band_um=opts.entropy_band_um,
        min_segment_um=opts.min_segment_um,
    )


def _morphometry(image, seg, opts: AnalysisOptions, *, flag) -> dict[str, Any]:
    """Surfaces from the section boundaries, their metrics and the DEJ's uncertainty."""
    from skinoct.morphometry import (
        crop_depth,
        fill_nearest,
        flatten_metrics,
        interpolate_rows,
        measure_surfaces,
        remove_outliers,
        surfaces_on_grid,
        uncertain_dej_area,
    )

    nz, ny, nx = image.shape
    dz, dy, dx = image.spacing_um
    # the three surfaces are independent: two threads (NumPy releases the GIL) when the
    # thread budget allows, with the same numbers
    workers = min(2, default_threads() or os.cpu_count() or 1)

    def clean(values):
        full = interpolate_rows(values, seg.rows, ny)
        return remove_outliers(
            full, (dy, dx), window_um=opts.outlier_window_um, threshold_um=opts.outlier_um
        )

    with ThreadPoolExecutor(workers, thread_name_prefix="skinoct-morphometry") as pool:
        cleaned = dict(zip(seg.bounds, pool.map(clean, seg.bounds.values()), strict=True))
    surfaces = {name: c[0] for name, c in cleaned.items()}
    outliers = {name: c[1] for name, c in cleaned.items()}
    dej = surfaces["dej"]
    if not np.isfinite(dej).any():
        raise InputError(
            "no DEJ found in the volume (the layer model finds no dermis)", path=image.path
        )
    # The boundaries on the volume's depth grid (as a label volume would hold them),
    # down to 10 µm below the deepest DEJ.
    raw = surfaces_on_grid(
        surfaces["surface"],
        surfaces["sc_junction"],
        dej,
        dz_um=dz,
        n_z=crop_depth(dej, dz, nz),
    )
    metrics = measure_surfaces(
        raw["surface"], raw["sc_junction"], raw["dej"], spacing_um=(dz, dy, dx), workers=workers
    )
    entropy_map = interpolate_rows(seg.dej_entropy, seg.rows, ny)
    entropy_map[~np.isfinite(metrics.dej_surface_um)] = np.nan
    # the flag of layers segment / measure_volume: excess entropy, calibrated threshold
    uncertain = uncertain_dej_area(
        entropy_map,
        metrics.dej_surface_um,
        (dy, dx),
        threshold=flag.threshold,
        min_length_um=flag.min_segment_um,
    )
    valid = np.isfinite(entropy_map)
    fraction = float(uncertain[valid].sum() / valid.sum()) if valid.any() else math.nan
    entropy_mean = float(np.nanmean(entropy_map)) if valid.any() else math.nan
    nested = metrics.to_dict()
    nested.pop("spacing_um", None)
    nested["dej_entropy_mean"] = entropy_mean
    nested["dej_uncertain_area_fraction"] = fraction
    flat = flatten_metrics(nested)
    smoothed_dej = np.asarray(metrics.dej_surface_um, dtype=np.float64)
    summary = {
        "coverage": float(np.isfinite(smoothed_dej).mean()),
        "filled_fraction_for_tiles": float((~np.isfinite(smoothed_dej)).mean()),
        "outlier_fraction": float(outliers["dej"].sum() / max(1, np.isfinite(dej).sum())),
        "entropy_mean": entropy_mean,
        "uncertain_area_fraction": fraction,
        "uncertainty_threshold": flag.threshold,
        "uncertainty_band_um": flag.band_um,
        "uncertainty_min_segment_um": flag.min_segment_um,
        "sections_segmented": int(seg.rows.size),
        "segmented_depth_um": float(seg.segmented_depth_um),
        "depth_mean_um": float(np.nanmean(smoothed_dej)),
    }
    return {
        "metrics": nested,
        "table": {key: flat.get(key) for key in TABLE_METRICS},
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


def _flags(morph, profile, opts: AnalysisOptions) -> list[str]:
    s = morph["dej_summary"]
    flags = []
    if (
        math.isfinite(s["uncertain_area_fraction"])
        and s["uncertain_area_fraction"] > opts.uncertain_flag_fraction
    ):
        flags.append(
            f"uncertain DEJ: {100 * s['uncertain_area_fraction']:.0f}% of the DEJ area has "
            f"excess entropy > {s['uncertainty_threshold']:g}"
        )
    if s["coverage"] < 0.9:
        flags.append(f"DEJ found over {100 * s['coverage']:.0f}% of the field only")
    if s["outlier_fraction"] > 0.05:
        flags.append(
            f"{100 * s['outlier_fraction']:.0f}% of DEJ positions were outliers (replaced)"
        )
    graded = profile.n_tiles[~profile.straddling]  # straddling depths are left out on purpose
    missing = int((graded == 0).sum())
    if missing:
        flags.append(f"{missing} of {graded.size} depths without tiles (volume too shallow?)")
    elif profile.dropped:
        flags.append(f"{profile.dropped} tile(s) left out (outside the volume)")
    return flags
