"""Subjects, raters and cohorts: the study design of seed 002 with known truth.

Seed 002 (Breugnot et al. 2023, Skin Res Technol 29:e13221, §2.3 and Fig. 3) scores
the dermal matrix of 36 women in three groups of 12 over the 70 µm below the DEJ:
young 2.77 ± 0.33, old 2.04 ± 0.36, old photo-exposed 1.68 ± 0.37 (mean ± s.d. of the
subject means), the old groups lower and more altered deeper. Six experts graded
each tile and the majority vote was kept (§2.2.2).
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io import atomic_path, write_image, write_text
from skinoct.phantom._params import VolumeParams
from skinoct.phantom._volume import SCORED_DEPTH_UM, render_volume

__all__ = [
    "GROUPS",
    "GroupModel",
    "rater_grades",
    "render_cohort",
    "subject_q_profile",
    "write_csv",
    "write_npz",
    "write_subject",
]


@dataclass(frozen=True)
class GroupModel:
    """Population model of one group's q(depth) profiles.

    ``mean_q`` and ``sd_q``: mean and s.d. of the subject means over 0–70 µm
    (seed 002, Fig. 3B). ``decline``: how much lower q is at 70 µm than at the DEJ,
    in logit units of ``(q − 1)/3`` (larger = more altered deeper).
    """

    mean_q: float
    sd_q: float
    decline: float


#: The three groups of seed 002.
GROUPS: dict[str, GroupModel] = {
    "young": GroupModel(mean_q=2.77, sd_q=0.33, decline=0.4),
    "old": GroupModel(mean_q=2.04, sd_q=0.36, decline=1.0),
    "old_photoexposed": GroupModel(mean_q=1.68, sd_q=0.37, decline=1.5),
}
_WIGGLE_SD = 0.15  #: s.d. (logit units) of the smooth within-subject fluctuation
_WIGGLE_UM = 10.0  #: its correlation length in µm
_PROFILE_UM = 2000  #: profiles are drawn on 0 … 2000 µm, 1 µm apart


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _check_group(group: str) -> GroupModel:
    if group not in GROUPS:
        raise InputError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    return GROUPS[group]


def subject_q_profile(group: str, depths_um, *, rng: np.random.Generator) -> np.ndarray:
    """Draw one subject's dermal-matrix quality as a function of depth below the DEJ.

    The subject's mean over 0–70 µm is drawn from ``N(mean_q, sd_q)`` of its group
    (truncated to [1.1, 3.9]); the profile ``q(d) = 1 + 3·σ(a − b·(d/70)^1.5 + w(d))``
    declines with depth by a subject-specific ``b`` (group ``decline`` × lognormal
    factor, s.d. 20 %) with a smooth fluctuation ``w`` (s.d. 0.15, correlation 10 µm);
    ``a`` is solved so the mean over 0–70 µm equals the drawn subject mean.

    Parameters
    ----------
    group : {'young', 'old', 'old_photoexposed'}
    depths_um : array_like
        Depths below the DEJ (µm, 0–2000) at which to return q.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        q at ``depths_um``, in [1, 4].

    Raises
    ------
    InputError
        Unknown group, or depths outside 0–2000 µm.
    """
    model = _check_group(group)
    depths = np.asarray(depths_um, dtype=float)
    if depths.size and (not np.all(np.isfinite(depths)) or depths.min() < 0
                        or depths.max() > _PROFILE_UM):  # fmt: skip
        raise InputError(f"depths_um must lie in [0, {_PROFILE_UM}] µm")
    target = float(np.clip(rng.normal(model.mean_q, model.sd_q), 1.1, 3.9))
    decline = model.decline * float(rng.lognormal(0.0, 0.2))
    grid = np.arange(_PROFILE_UM + 1, dtype=float)
    # AR(1) fluctuation with correlation length _WIGGLE_UM, stationary s.d. _WIGGLE_SD.
    rho = math.exp(-1.0 / _WIGGLE_UM)
    innov = rng.normal(0.0, _WIGGLE_SD * math.sqrt(1 - rho**2), grid.size)
    innov[0] = rng.normal(0.0, _WIGGLE_SD)
    wiggle = np.empty_like(innov)
    acc = 0.0
    for i, v in enumerate(innov):  # 2001 steps: negligible next to a volume
        acc = rho * acc + v if i else v
        wiggle[i] = acc
    shape = -decline * np.minimum(grid / SCORED_DEPTH_UM, 3.0) ** 1.5 + wiggle
    scored = grid <= SCORED_DEPTH_UM
    lo, hi = -20.0, 20.0  # mean over 0–70 µm is increasing in a: bisection
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(1 + 3 * _sigmoid(mid + shape[scored])) < target:
            lo = mid
        else:
            hi = mid
    q = 1 + 3 * _sigmoid(0.5 * (lo + hi) + shape)
    return np.interp(depths, grid, q)


def rater_grades(
    q,
    *,
    n_raters: int = 6,
    noise_sd: float = 0.4,
    bias_sd: float = 0.1,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate expert grading of tiles of quality ``q`` and their majority vote.

    Rater ``r`` gives ``clip(round(q + b_r + e), 1, 4)`` with a fixed personal bias
    ``b_r ~ N(0, bias_sd)`` and a per-tile error ``e ~ N(0, noise_sd)``. The majority
    is the most frequent grade (seed 002 §2.2.2); ties go to the tied grade closest
    to the median rating, the lower one if two are equally close — the rule of
    :func:`skinoct.datasets.majority_grade` that reads ``labels.csv``.

    With the defaults a rater agrees with the true grade on ~67 % of tiles (q uniform
    in [1, 4]) and the majority on ~81 %, near the 0.83 accuracy of the seed's model
    against the experts' majority (``tests/phantom/test_cohort.py`` measures it).

    Parameters
    ----------
    q : array_like
        Tile qualities in [1, 4], shape ``(n,)``.
    n_raters : int
        Number of raters (1–50).
    noise_sd, bias_sd : float
        Per-tile and per-rater s.d. in grade units (0–3).
    rng : numpy.random.Generator

    Returns
    -------
    grades : ndarray of int, shape (n, n_raters)
    majority : ndarray of int, shape (n,)

    Raises
    ------
    InputError
        For q outside [1, 4] or invalid options.
    """
    qs = np.atleast_1d(np.asarray(q, dtype=float))
    if qs.ndim != 1 or not np.all(np.isfinite(qs)) or qs.min() < 1 or qs.max() > 4:
        raise InputError("q must be a 1-D array of qualities in [1, 4]")
    if isinstance(n_raters, bool) or not isinstance(n_raters, (int, np.integer)):
        raise InputError(f"n_raters must be an integer, got {n_raters!r}")
    if not 1 <= n_raters <= 50:
        raise InputError(f"n_raters must be in [1, 50], got {n_raters}")
    for name, value in (("noise_sd", noise_sd), ("bias_sd", bias_sd)):
        if not (math.isfinite(value) and 0 <= value <= 3):
            raise InputError(f"{name} must be in [0, 3], got {value!r}")
    from skinoct.datasets import majority_grade

    bias = rng.normal(0.0, bias_sd, n_raters)
    error = rng.normal(0.0, noise_sd, (qs.size, n_raters))
    grades = np.clip(np.floor(qs[:, None] + bias[None, :] + error + 0.5), 1, 4).astype(int)
    majority = np.asarray(majority_grade(grades, tie="median"), dtype=int)
    return grades, majority


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a CSV atomically; floats with ``repr`` precision so files are reproducible."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return write_text(path, buf.getvalue())


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays as a compressed ``.npz`` that is byte-identical for identical data.

    ``numpy.savez`` stamps each member with the current time; this fixes it.
    """
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return path


Progress = Callable[..., Iterable]


def render_cohort(
    out_dir: str | Path,
    *,
    groups: Sequence[str] = ("young", "old", "old_photoexposed"),
    subjects_per_group: int = 12,
    volume_params: VolumeParams | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    write_masks: bool = False,
) -> Path:
    """Render a cohort of subjects whose matrix-quality profiles differ by group.

    Writes (ARCHITECTURE.md, "Cohort")::

        DIR/manifest.csv                 subject, group, volume, site
        DIR/volumes/<subject>.ome.tif    float32 z×y×x with PhysicalSizeZ/Y/X
        DIR/ground_truth/<subject>.npz   dej_um (y×x), depths_um, q_profile,
                                         surface_um, sc_junction_um
        DIR/ground_truth.csv             subject, group, mean_q (0–70 µm), q_dej, q_70um
        DIR/masks/<subject>.ome.tif      label volumes (only with ``write_masks``)

    Each subject gets its own random stream (``numpy.random.SeedSequence(seed)``
    spawned per subject), so a subject's files do not depend on the others. The same
    arguments give byte-identical files.

    Parameters
    ----------
    out_dir : str or Path
    groups : sequence of str
        Groups of :data:`GROUPS`, in manifest order.
    subjects_per_group : int
        1–1000 (seed 002: 12).
    volume_params : VolumeParams, optional
        Geometry and imaging of every volume; default :class:`VolumeParams` (300 × 500
        × 1200 µm: 720 MB per volume on disk). Its ``q_profile`` is replaced by each
        subject's.
    seed : int
    progress : callable, optional
        ``progress(items, description=..., total=...)`` wrapping the subject loop
        (e.g. :func:`skinoct.cli._common.progress`).
    write_masks : bool
        Also write the label volumes.

    Returns
    -------
    Path
        ``DIR/manifest.csv``.

    Raises
    ------
    InputError
        Unknown group, bad counts or parameters.
    """
    groups = tuple(groups)
    if not groups:
        raise InputError("groups must name at least one group")
    for group in groups:
        _check_group(group)
    if len(set(groups)) != len(groups):
        raise InputError(f"groups are given twice: {groups}")
    if isinstance(subjects_per_group, bool) or not isinstance(
        subjects_per_group, (int, np.integer)
    ):
        raise InputError(f"subjects_per_group must be an integer, got {subjects_per_group!r}")
    if not 1 <= subjects_per_group <= 1000:
        raise InputError(f"subjects_per_group must be in [1, 1000], got {subjects_per_group}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    params = VolumeParams() if volume_params is None else volume_params
    if not isinstance(params, VolumeParams):
        raise InputError(f"volume_params must be a VolumeParams, got {type(params).__name__}")
    out = Path(out_dir)
    subjects = [
        (f"S{i + 1:03d}", group)
        for i, group in enumerate(g for g in groups for _ in range(subjects_per_group))
    ]
    streams = np.random.SeedSequence(int(seed)).spawn(len(subjects))
    items = list(zip(subjects, streams, strict=True))
    if progress is not None:
        items = progress(items, description="rendering cohort", total=len(items))
    manifest, truth = [], []
    for (subject, group), stream in items:
        vol = write_subject(out, subject, group, params, np.random.default_rng(stream),
                            write_masks=write_masks)  # fmt: skip
        manifest.append((subject, group, f"volumes/{subject}.ome.tif", params.site))
        truth.append((subject, group, round(vol.mean_q, 6), round(float(vol.q_profile[0]), 6),
                      round(float(vol.q_profile[SCORED_DEPTH_UM]), 6)))  # fmt: skip
    write_csv(out / "ground_truth.csv", TRUTH_COLUMNS, truth)
    return write_csv(out / "manifest.csv", MANIFEST_COLUMNS, manifest)


#: Columns of ``manifest.csv`` and ``ground_truth.csv`` written by the phantom.
MANIFEST_COLUMNS = ("subject", "group", "volume", "site")
TRUTH_COLUMNS = ("subject", "group", "mean_q", "q_dej", "q_70um")


def write_subject(
    out: Path,
    subject: str,
    group: str,
    params: VolumeParams,
    rng: np.random.Generator,
    *,
    write_masks: bool,
):
    """Draw a subject's q profile, render its volume and write its files."""
    q = subject_q_profile(group, np.arange(_PROFILE_UM + 1, dtype=float), rng=rng)
    vol = render_volume(replace(params, q_profile=q), seed=rng)
    write_image(out / "volumes" / f"{subject}.ome.tif", vol.volume, spacing_um=vol.spacing_um,
                axes="zyx")  # fmt: skip
    if write_masks:
        write_image(out / "masks" / f"{subject}.ome.tif", vol.labels, spacing_um=vol.spacing_um,
                    axes="zyx")  # fmt: skip
    write_npz(
        out / "ground_truth" / f"{subject}.npz",
        {
            "dej_um": vol.dej_um, "depths_um": vol.depths_um, "q_profile": vol.q_profile,
            "surface_um": vol.surface_um, "sc_junction_um": vol.sc_junction_um,
            "spacing_um": np.asarray(vol.spacing_um),
        },
    )  # fmt: skip
    return vol
