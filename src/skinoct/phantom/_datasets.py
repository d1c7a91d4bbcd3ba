"""Phantom datasets on disk, in the layouts the training commands read (ARCHITECTURE.md).

- sections: ``images/<id>.ome.tif``, ``masks/<id>.ome.tif``, ``index.csv``,
  ``ground_truth/<id>.csv`` (x_um, surface_um, sc_junction_um, dej_um);
- en-face tiles: ``tiles/<tile_id>.png`` (RGB = z−1, z, z+1), ``tiles.csv``,
  ``labels.csv`` (grades, or 1…k raters and their majority);
- volumes: the cohort layout with ground truth and label volumes.

Every random choice comes from ``numpy.random.SeedSequence(seed)`` spawned per
subject (or pseudo-volume), so the same arguments give byte-identical files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io import to_uint8, write_image
from skinoct.phantom._cohort import (
    GROUPS,
    MANIFEST_COLUMNS,
    TRUTH_COLUMNS,
    Progress,
    rater_grades,
    subject_q_profile,
    write_csv,
    write_subject,
)
from skinoct.phantom._enface import grade_of, render_enface
from skinoct.phantom._families import Family, check_family, pick_family
from skinoct.phantom._indeterminate import indeterminate_labels
from skinoct.phantom._params import SITES, EnfaceParams, SectionParams, VolumeParams
from skinoct.phantom._section import render_section
from skinoct.phantom._volume import SCORED_DEPTH_UM

__all__ = [
    "SITE_WEIGHTS",
    "sample_section_params",
    "write_enface_dataset",
    "write_section_dataset",
    "write_volume_dataset",
]

#: Site mix of ``site=None`` datasets (the seed-000 training set spans many sites).
SITE_WEIGHTS = {"face": 0.35, "forearm": 0.25, "back": 0.25, "palm": 0.15}
#: Depths below the DEJ at which the seed extracted tiles: every 5 µm over 70 µm.
TILE_DEPTHS_UM = tuple(range(0, SCORED_DEPTH_UM + 1, 5))


def _check_count(name: str, value, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= high:
        raise InputError(f"{name} must be in [1, {high}], got {value}")
    return int(value)


def _check_fraction(name: str, value) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
        raise InputError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _progress(items, progress: Progress | None, description: str):
    items = list(items)
    return items if progress is None else progress(items, description=description,
                                                   total=len(items))  # fmt: skip


def sample_section_params(
    rng: np.random.Generator,
    *,
    site: str | None = None,
    noise: float = 1.0,
    disruption_probability: float = 0.0,
    width_um: float = 1200.0,
    depth_um: float = 512.0,
    spacing_um: tuple[float, float] = (1.0, 1.0),
    subject: dict | None = None,
) -> SectionParams:
    """Draw varied but plausible section parameters (for training data).

    Subject-level values (site, thicknesses ×0.75–1.3 of the site's, pigmentation,
    DEJ shape, matrix quality) come from ``subject`` when given (see
    :func:`sample_subject`); per-section values vary around them: surface depth
    25–110 µm, tilt ±12°, curvature ±1/mm, 0–6 protrusions, noise ×0.7–1.3, stripes
    0–0.08, a blur in 30 % of sections, and a DEJ disruption 100–300 µm wide with
    probability ``disruption_probability``.
    """
    subject = sample_subject(rng, site=site) if subject is None else subject
    disruption = None
    if rng.random() < disruption_probability:
        w = min(rng.uniform(100.0, 300.0), 0.5 * width_um)
        x0 = rng.uniform(0.1 * width_um, 0.9 * width_um - w)
        disruption = (_r(x0), _r(x0 + w))
    blur = float(rng.uniform(0.5, 4.0)) if rng.random() < 0.3 else 0.0
    return SectionParams(
        **subject,
        width_um=width_um, depth_um=depth_um, spacing_um=spacing_um,
        surface_depth_um=_r(rng.uniform(25.0, 110.0)), tilt_deg=_r(rng.uniform(-12.0, 12.0)),
        curvature=_r(rng.uniform(-1.0, 1.0)), roughness_um=_r(rng.uniform(0.5, 4.0)),
        n_protrusions=int(rng.integers(0, 7)),
        noise=_r(np.clip(noise * rng.uniform(0.7, 1.3), 0.0, 5.0)),
        stripes=_r(rng.uniform(0.0, 0.08)), blur_um=_r(blur), disruption=disruption,
    )  # fmt: skip


def family_section_params(
    rng: np.random.Generator,
    family: Family,
    *,
    subject: dict,
    disruption_probability: float,
    width_um: float,
    depth_um: float,
) -> SectionParams:
    """Geometry of one section of an appearance family (its pixel size, tilt, curvature
    and thickness spread around the subject's); the look is drawn separately.

    The field of view is capped at 1200 columns × 1024 rows so fine pixels stay cheap.
    """
    (z0, z1), (x0, x1) = family.spacing_um
    dz, dx = _r(rng.uniform(z0, z1)), _r(rng.uniform(x0, x1))
    width, depth = min(width_um, 1200 * dx), min(depth_um, 1024 * dz)
    scale = rng.uniform(*family.thickness_scale, 2) / 1.0
    disruption = None
    if rng.random() < disruption_probability:
        w = min(rng.uniform(100.0, 300.0), 0.5 * width)
        start = rng.uniform(0.1 * width, 0.9 * width - w)
        disruption = (_r(start), _r(start + w))
    fields = {
        **subject,
        "sc_thickness_um": _r(np.clip(subject["sc_thickness_um"] * scale[0], 2.0, 300.0)),
        "epidermis_thickness_um": _r(
            np.clip(subject["epidermis_thickness_um"] * scale[1], 10.0, 300.0)
        ),
    }
    return SectionParams(
        **fields,
        width_um=_r(width), depth_um=_r(depth), spacing_um=(dz, dx),
        surface_depth_um=_r(rng.uniform(25.0, 110.0)),
        tilt_deg=_r(rng.uniform(-family.max_tilt_deg, family.max_tilt_deg)),
        curvature=_r(rng.uniform(-family.max_curvature, family.max_curvature)),
        roughness_um=_r(rng.uniform(0.5, 5.0)), n_protrusions=int(rng.integers(0, 7)),
        disruption=disruption,
    )  # fmt: skip


def _r(value) -> float:
    """Round a drawn value to 4 decimals so index.csv reads well and round-trips."""
    return round(float(value), 4)


def sample_subject(rng: np.random.Generator, *, site: str | None = None) -> dict:
    """Subject-level skin parameters (keyword arguments of :class:`SectionParams`)."""
    if site is None:
        site = str(rng.choice(list(SITE_WEIGHTS), p=list(SITE_WEIGHTS.values())))
    elif site not in SITES:
        raise InputError(f"site must be one of {', '.join(SITES)}, got {site!r}")
    base = SITES[site]
    return {
        "site": site,
        "sc_thickness_um": round(float(base.sc_thickness_um * rng.uniform(0.75, 1.3)), 3),
        "epidermis_thickness_um": round(
            float(base.epidermis_thickness_um * rng.uniform(0.75, 1.3)), 3
        ),
        "pigmentation": round(float(rng.uniform(0.0, 1.0)), 4),
        "dej_amplitude_um": round(float(rng.uniform(3.0, 25.0)), 3),
        "dej_wavelength_um": round(float(rng.uniform(60.0, 180.0)), 3),
        "dej_irregularity": round(float(rng.uniform(0.0, 1.0)), 4),
        "matrix_q": round(float(rng.uniform(1.0, 4.0)), 4),
    }


def write_section_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    site: str | None = None,
    sections_per_subject: int = 4,
    noise: float = 1.0,
    disruption_fraction: float = 0.2,
    width_um: float = 1200.0,
    depth_um: float = 512.0,
    spacing_um: tuple[float, float] = (1.0, 1.0),
    family: str | None = None,
    indeterminate_um: float = 0.0,
    progress: Progress | None = None,
) -> Path:
    """Render ``n`` vertical sections into the layer-segmentation dataset layout.

    Sections are grouped into subjects of ``sections_per_subject`` (shared site,
    thicknesses, pigmentation, DEJ shape) so cross-validation can split by subject.
    ``index.csv`` lists ``id, subject, site, seed`` and every :class:`SectionParams`
    field (the disruption as ``disruption_x0_um, disruption_x1_um``, empty if none).

    With ``family`` (a name of :data:`FAMILIES` or ``'mixed'``), each section draws
    its look with :func:`sample_appearance` and its pixel size (``spacing_um`` is
    then ignored), tilt, curvature and thickness spread from the family's ranges;
    ``noise`` is then ignored too (the look sets the noise). ``index.csv`` gains
    ``family`` and the appearance fields (``look_*``). None: the plain look.

    With ``indeterminate_um > 0`` the masks of disrupted sections mark the DEJ band
    of the disruption (that half-width at its centre) as 255, indeterminate
    (:func:`indeterminate_labels`); training then blends the target across it.

    Returns
    -------
    Path
        ``DIR/index.csv``.
    """
    n = _check_count("n", n, 100_000)
    per = _check_count("sections_per_subject", sections_per_subject, 10_000)
    fraction = _check_fraction("disruption_fraction", disruption_fraction)
    if not (np.isfinite(indeterminate_um) and 0.0 <= float(indeterminate_um) <= 200.0):
        raise InputError(f"indeterminate_um must be in [0, 200] µm, got {indeterminate_um!r}")
    if site is not None and site not in SITES:
        raise InputError(f"site must be one of {', '.join(SITES)}, got {site!r}")
    if family is not None:
        check_family(family)
    out = Path(out_dir)
    n_subjects = math.ceil(n / per)
    jobs = []
    for s, stream in enumerate(np.random.SeedSequence(int(seed)).spawn(n_subjects)):
        rng = np.random.default_rng(stream)
        subject = sample_subject(rng, site=site)
        for k in range(min(per, n - s * per)):
            look = None
            if family is None:
                params = sample_section_params(
                    rng, noise=noise, disruption_probability=fraction, width_um=width_um,
                    depth_um=depth_um, spacing_um=spacing_um, subject=subject,
                )  # fmt: skip
            else:
                fam = pick_family(rng, family)
                params = family_section_params(
                    rng, fam, subject=subject, disruption_probability=fraction,
                    width_um=width_um, depth_um=depth_um,
                )  # fmt: skip
                look = fam.sample(rng)
            jobs.append((f"sec{s * per + k + 1:05d}", f"subj{s + 1:04d}", params,
                         int(rng.integers(0, 2**31 - 1)), look))  # fmt: skip
    rows = []
    header = None
    for sid, subject, params, sseed, look in _progress(jobs, progress, "rendering sections"):
        sec = render_section(params, seed=sseed, appearance=look)
        write_image(out / "images" / f"{sid}.ome.tif", sec.image, spacing_um=sec.spacing_um,
                    axes="zx")  # fmt: skip
        labels = indeterminate_labels(sec, half_width_um=indeterminate_um)
        write_image(out / "masks" / f"{sid}.ome.tif", labels, spacing_um=sec.spacing_um,
                    axes="zx")  # fmt: skip
        b = sec.boundaries_um
        curves = np.column_stack([sec.x_um, b["surface"], b["sc_junction"], b["dej"]])
        write_csv(
            out / "ground_truth" / f"{sid}.csv",
            ("x_um", "surface_um", "sc_junction_um", "dej_um"),
            ([_num(v) for v in row] for row in curves),
        )
        record = params.as_dict()
        record.pop("disruption")
        d = params.disruption
        record["disruption_x0_um"] = "" if d is None else d[0]
        record["disruption_x1_um"] = "" if d is None else d[1]
        if look is not None:
            record.update({"family": look.family})
            record.update({f"look_{k}": v for k, v in look.as_dict().items() if k != "family"})
        fields = [k for k in record if k != "site"]
        header = ("id", "subject", "site", "seed", *fields)
        rows.append((sid, subject, params.site, sseed, *(record[k] for k in fields)))
    return write_csv(out / "index.csv", header, rows)


def _num(value: float) -> str:
    """A float for CSV: 4 decimals (0.1 nm), empty for NaN."""
    return "" if not np.isfinite(value) else f"{float(value):.4f}"


def write_enface_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    raters: int = 0,
    tiles_per_volume: int = 10,
    params: EnfaceParams | None = None,
    q_distribution: str = "uniform",
    progress: Progress | None = None,
) -> Path:
    """Render ``n`` graded en-face tiles into the dermal-matrix tile dataset layout.

    Tiles are grouped into pseudo-volumes of ``tiles_per_volume`` tiles, one subject
    each (for subject-wise splits), at the seed's depths below the DEJ (0, 5, …
    70 µm, cycling). Qualities are drawn uniformly in [1, 4] (``'uniform'``: balanced
    grades 1/6, 1/3, 1/3, 1/6) or from the subject's q(depth) profile of a random
    group (``'cohort'``: few grade-4 tiles, as in seed 002, Table 1). Each PNG holds
    the three slices scaled together (0.5–99.5 percentiles, :func:`skinoct.io.to_uint8`).

    ``labels.csv`` is ``tile_id, grade`` (the true grade) or, with ``raters > 0``,
    ``tile_id, rater_1 … rater_k, grade`` with simulated raters
    (:func:`rater_grades`) and their majority vote.

    Returns
    -------
    Path
        ``DIR/tiles.csv``.
    """
    import pandas as pd

    from skinoct.datasets import write_tile_dataset

    n = _check_count("n", n, 1_000_000)
    per = _check_count("tiles_per_volume", tiles_per_volume, 10_000)
    if (
        isinstance(raters, bool)
        or not isinstance(raters, (int, np.integer))
        or not (0 <= raters <= 50)
    ):
        raise InputError(f"raters must be an integer in [0, 50], got {raters!r}")
    if q_distribution not in ("uniform", "cohort"):
        raise InputError(f"q_distribution must be 'uniform' or 'cohort', got {q_distribution!r}")
    params = EnfaceParams() if params is None else params
    if not isinstance(params, EnfaceParams):
        raise InputError(f"params must be an EnfaceParams, got {type(params).__name__}")
    out = Path(out_dir)
    n_volumes = math.ceil(n / per)
    streams = np.random.SeedSequence(int(seed)).spawn(n_volumes + 1)
    labels_rng = np.random.default_rng(streams[-1])
    all_ids, all_q = [], []
    for v, stream in _progress(list(enumerate(streams[:-1])), progress, "rendering tiles"):
        rng = np.random.default_rng(stream)
        count = min(per, n - v * per)
        depths = np.array([TILE_DEPTHS_UM[(v + k) % len(TILE_DEPTHS_UM)] for k in range(count)])
        if q_distribution == "uniform":
            qs = rng.uniform(1.0, 4.0, count)
        else:
            group = str(rng.choice(list(GROUPS)))
            qs = subject_q_profile(group, depths.astype(float), rng=rng)
        tiles, ids = [], []
        for k in range(count):
            tile_id = f"t{v * per + k + 1:06d}"
            tile = render_enface(float(qs[k]), params, seed=rng)
            tiles.append(to_uint8(tile.stack))
            ids.append(tile_id)
        volume_id, subject = f"v{v + 1:05d}", f"subj{v + 1:05d}"
        index = pd.DataFrame({
            "tile_id": ids, "volume_id": volume_id, "subject": subject,
            "depth_um": depths.astype(float), "row": 0, "col": 0,
            "q": np.round(qs, 6),
        })  # fmt: skip
        csv = write_tile_dataset(out, np.stack(tiles), index)
        all_ids += ids
        all_q += [float(q) for q in np.round(qs, 6)]
    q = np.asarray(all_q)
    if raters:
        grades, majority = rater_grades(q, n_raters=int(raters), rng=labels_rng)
        header = ("tile_id", *(f"rater_{r + 1}" for r in range(raters)), "grade")
        rows = [(t, *g.tolist(), int(m)) for t, g, m in zip(all_ids, grades, majority,
                                                               strict=True)]  # fmt: skip
    else:
        header = ("tile_id", "grade")
        rows = [(t, int(g)) for t, g in zip(all_ids, grade_of(q), strict=True)]
    write_csv(out / "labels.csv", header, rows)
    return csv


def write_volume_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    params: VolumeParams | None = None,
    groups: Sequence[str] = tuple(GROUPS),
    write_masks: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Render ``n`` volumes, each with a random group's q profile, in the cohort layout.

    Like :func:`render_cohort` but the group of each volume is drawn at random, and
    the label volumes are written by default (``masks/<id>.ome.tif``).

    Returns
    -------
    Path
        ``DIR/manifest.csv``.
    """
    n = _check_count("n", n, 10_000)
    for group in groups:
        if group not in GROUPS:
            raise InputError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    params = VolumeParams() if params is None else params
    if not isinstance(params, VolumeParams):
        raise InputError(f"params must be a VolumeParams, got {type(params).__name__}")
    out = Path(out_dir)
    manifest, truth = [], []
    streams = list(enumerate(np.random.SeedSequence(int(seed)).spawn(n)))
    for i, stream in _progress(streams, progress, "rendering volumes"):
        rng = np.random.default_rng(stream)
        group = str(rng.choice(list(groups)))
        subject = f"vol{i + 1:04d}"
        vol = write_subject(out, subject, group, params, rng, write_masks=write_masks)
        manifest.append((subject, group, f"volumes/{subject}.ome.tif", params.site))
        truth.append((subject, group, round(vol.mean_q, 6), round(float(vol.q_profile[0]), 6),
                      round(float(vol.q_profile[SCORED_DEPTH_UM]), 6)))  # fmt: skip
    write_csv(out / "ground_truth.csv", TRUTH_COLUMNS, truth)
    return write_csv(out / "manifest.csv", MANIFEST_COLUMNS, manifest)
