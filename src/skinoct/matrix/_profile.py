"""The dermal-quality depth profile of a volume: :func:`grade_profile` (seed 002 §2.3.2).

For every layer ``d`` µm below the *local* DEJ, ``n_tiles`` tiles (:func:`profile_tiles`)
are graded (:func:`predict_tiles`); each tile's score is its expected grade Σ p·g, the
profile is the mean score per depth, and the volume's score is the mean of the profile
over the depths that hold tiles.

**Tiles that straddle the DEJ are not graded.** A tile at depth ``d`` samples the slices
``d − 1``, ``d`` and ``d + 1`` µm below the DEJ surface it follows; that surface is an
estimate, uncertain by about ±2 µm (1-µm segmentation grid, interpolation between
segmented sections, σ = 2 µm lateral smoothing), so the tiles of the first layers hold
epidermis in places and scored high (issue 15: the first 0–2 µm of the phantom
profiles). Depths whose shallowest slice lies less than ``dej_margin_um`` (default
2 µm) below the DEJ are therefore left out: the profile starts at 3 µm, the earlier
depths stay in it with no tiles (score NaN) and do not enter the volume's score.
``dej_margin_um=-1`` grades every depth (the former behaviour).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np

from skinoct.errors import InputError

__all__ = ["GradeProfile", "grade_profile"]


@dataclass(frozen=True)
class GradeProfile:
    """A volume's dermal-quality profile (:func:`grade_profile`).

    Attributes
    ----------
    depth_um : ndarray
        Depths below the local DEJ, µm.
    score, sd : ndarray
        Mean and SD (ddof 1) of the tile scores per depth; NaN without tiles (SD: with
        fewer than two).
    n_tiles : ndarray of int
        Tiles graded per depth.
    probabilities : dict of str to ndarray
        ``p_grade_<g>``: mean probability of each grade per depth.
    volume_score : float
        Mean of ``score`` over the depths with tiles (NaN if none).
    dropped : int
        Tiles left out because they reach outside the volume or where the DEJ is
        unknown.
    straddling : ndarray of bool
        Depths not graded because their tiles would straddle the DEJ.
    """

    depth_um: np.ndarray
    score: np.ndarray
    sd: np.ndarray
    n_tiles: np.ndarray
    probabilities: dict[str, np.ndarray] = field(repr=False)
    volume_score: float
    dropped: int
    straddling: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)

    @property
    def start_um(self) -> float:
        """The first depth that is graded (NaN when none is)."""
        graded = self.depth_um[~self.straddling] if self.straddling.size else self.depth_um
        return float(graded[0]) if graded.size else math.nan

    def to_dict(self) -> dict[str, list]:
        """``depth_um``, ``score``, ``sd``, ``n_tiles``, ``p_grade_<g>`` as plain lists."""
        return {
            "depth_um": [float(d) for d in self.depth_um],
            "score": [float(v) for v in self.score],
            "sd": [float(v) for v in self.sd],
            "n_tiles": [int(n) for n in self.n_tiles],
            **{key: [float(v) for v in values] for key, values in self.probabilities.items()},
        }


def grade_profile(
    volume,
    dej_um,
    model,
    *,
    depth_stop_um: float = 70.0,
    depth_step_um: float = 1.0,
    n_tiles: int = 3,
    tile_size_um: float = 400.0,
    engine: str = "torch",
    dej_margin_um: float = 2.0,
    channel_offset_um: float = 1.0,
    stage: Callable[[str], AbstractContextManager] | None = None,
) -> GradeProfile:
    """Grade DEJ-relative tiles layer by layer: the dermal-quality profile of a volume.

    Parameters
    ----------
    volume : Image
        A ``'zyx'`` volume with its spacing in µm.
    dej_um : float or ndarray (y, x)
        DEJ depth in µm from the top of the volume (NaN where unknown: tiles there are
        left out and counted in ``dropped``).
    model : MatrixModel
        A loaded grading model (:func:`load_matrix_model`).
    depth_stop_um, depth_step_um : float
        Depths ``0, step, …`` below ``depth_stop_um`` (seed 002: 70 layers of 1 µm).
    n_tiles : int
        Tiles per depth (seed 002: 3).
    tile_size_um : float
        Tile side (400 µm).
    engine : str
        Inference engine (as :func:`predict_tiles`).
    dej_margin_um : float
        Depths whose shallowest slice (``depth − channel_offset_um``) lies less than
        this below the DEJ straddle it and are not graded (see the module docstring).
    channel_offset_um : float
        Depth step between a tile's channels (1 µm).
    stage : callable, optional
        ``stage(name)`` returns a context manager wrapped around the ``'tiles'`` and
        the ``'grading'`` step (e.g. a timer).

    Returns
    -------
    GradeProfile

    Raises
    ------
    InputError
        Bad depths or options, a field smaller than one tile, a DEJ of the wrong shape.
    """
    # through the package: the names stay patchable (tests stand in for the model)
    from skinoct.matrix import expected_grade, predict_tiles, profile_tiles

    if not (depth_stop_um > 0 and depth_step_um > 0):
        raise InputError("depth_stop_um and depth_step_um must be positive")
    stage = stage or (lambda name: nullcontext())
    if not math.isfinite(dej_margin_um):
        raise InputError(f"dej_margin_um must be a finite depth in µm, got {dej_margin_um!r}")
    depths = np.arange(0.0, float(depth_stop_um) - 1e-9, float(depth_step_um))
    straddling = depths - float(channel_offset_um) < float(dej_margin_um) - 1e-9
    if straddling.all():
        raise InputError(
            f"no depth below {depth_stop_um:g} µm is {dej_margin_um:g} µm clear of the DEJ"
        )
    with stage("tiles"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiles, index = profile_tiles(
            volume,
            dej_um,
            depths_um=depths,
            n_tiles=int(n_tiles),
            tile_size_um=tile_size_um,
            channel_offset_um=channel_offset_um,
        )
    for w in caught:  # tiles left out are counted in ``dropped`` instead
        if "left out" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    dropped = int(index.attrs.get("dropped", 0))
    # The straddling tiles are cut with the others (the uint8 intensity range is that of
    # all the profile's tiles, as before the rule) and left out here.
    keep = ~np.isin(index["depth_um"].to_numpy(float), depths[straddling])
    tiles, index = tiles[keep], index[keep]
    classes = list(model.classes)
    with stage("grading"):
        if len(tiles):
            probs = predict_tiles(tiles, model, engine=engine)
            scores = expected_grade(probs, classes=classes)
        else:
            probs = np.zeros((0, len(classes)), np.float32)
            scores = np.zeros(0)
        del tiles
        tile_depth = index["depth_um"].to_numpy(float)
        profile = _aggregate(depths, tile_depth, scores, probs, classes, dropped)
    return replace(profile, straddling=straddling)


def _aggregate(depths, tile_depth, scores, probs, classes, dropped: int) -> GradeProfile:
    """Per-depth mean, SD, count and mean grade probabilities of the tile scores."""
    mean, sd, count = [], [], []
    grade_p: dict[str, list[float]] = {f"p_grade_{g}": [] for g in classes}
    for d in depths:
        sel = np.isclose(tile_depth, d)
        n = int(sel.sum())
        count.append(n)
        mean.append(float(scores[sel].mean()) if n else math.nan)
        sd.append(float(scores[sel].std(ddof=1)) if n > 1 else math.nan)
        for j, g in enumerate(classes):
            grade_p[f"p_grade_{g}"].append(float(probs[sel, j].mean()) if n else math.nan)
    finite = [m for m in mean if math.isfinite(m)]
    return GradeProfile(
        depth_um=np.asarray(depths, float),
        score=np.asarray(mean),
        sd=np.asarray(sd),
        n_tiles=np.asarray(count, int),
        probabilities={k: np.asarray(v) for k, v in grade_p.items()},
        volume_score=float(np.mean(finite)) if finite else math.nan,
        dropped=dropped,
    )
