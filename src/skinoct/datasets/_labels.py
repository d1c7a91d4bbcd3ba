"""Tile grades: reading label tables, the majority vote over raters, Fleiss' κ."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from skinoct.errors import InputError

__all__ = [
    "GRADES",
    "TieRule",
    "TileLabels",
    "fleiss_kappa",
    "majority_grade",
    "read_labels",
]

#: The four dermal-matrix quality grades (seed 002 §2.2.2, Figure 1): 1 coarse and
#: fragmented fibres, sponge-like … 4 web-like, elongated and reticulated network.
GRADES = (1, 2, 3, 4)

TieRule = Literal["median", "lower", "upper"]
_TIE_RULES = ("median", "lower", "upper")
_RATER_COLUMN = re.compile(r"^rater_?(\w+)$", re.IGNORECASE)


def majority_grade(
    ratings,
    *,
    grades=GRADES,
    tie: TieRule = "median",
) -> np.ndarray:
    """Most frequent grade per tile ("the most frequent score", seed 002 §2.2.2).

    Parameters
    ----------
    ratings : array_like, shape (n_tiles, n_raters)
        Grades given by each rater; NaN marks a missing rating.
    grades : sequence of int
        The valid grades.
    tie : {'median', 'lower', 'upper'}
        What to do when several grades are equally frequent (the paper does not
        say). ``'median'`` (default): the tied grade closest to the median of all
        the tile's ratings, and the lower one if two are equally close;
        ``'lower'`` / ``'upper'``: the lowest / highest tied grade.

    Returns
    -------
    ndarray of int, shape (n_tiles,)

    Raises
    ------
    InputError
        Ratings outside ``grades``, a tile without any rating, or an unknown tie rule.

    Examples
    --------
    >>> majority_grade([[1, 2, 2, 3, 3, 4]]).tolist()  # modes 2 and 3, median 2.5
    [2]
    >>> majority_grade([[1, 1, 3, 3, 3, 4], [2, 2, 4, 4, 4, 4]]).tolist()
    [3, 4]
    """
    if tie not in _TIE_RULES:
        raise InputError(f"tie must be one of {_TIE_RULES}, got {tie!r}")
    values = np.atleast_2d(np.asarray(ratings, dtype=float))
    if values.ndim != 2:
        raise InputError(f"ratings must be a 2-D table (tiles × raters), got shape {values.shape}")
    grades = np.asarray(sorted(grades), dtype=float)
    present = np.isfinite(values)
    bad = present & ~np.isin(values, grades)
    if bad.any():
        raise InputError(
            f"ratings must be grades {grades.astype(int).tolist()}, "
            f"found {np.unique(values[bad]).tolist()}"
        )
    empty = ~present.any(axis=1)
    if empty.any():
        raise InputError(f"{int(empty.sum())} tile(s) have no rating at all")
    counts = np.stack([(values == g).sum(axis=1) for g in grades], axis=1)  # (n, k)
    is_mode = counts == counts.max(axis=1, keepdims=True)
    if tie == "lower":
        choice = np.argmax(is_mode, axis=1)
    elif tie == "upper":
        choice = len(grades) - 1 - np.argmax(is_mode[:, ::-1], axis=1)
    else:
        median = np.nanmedian(values, axis=1, keepdims=True)
        distance = np.where(is_mode, np.abs(grades[None, :] - median), np.inf)
        choice = np.argmin(distance, axis=1)  # first (lowest) grade on equal distance
    return grades[choice].astype(int)


def fleiss_kappa(ratings, *, grades=GRADES) -> float:
    """Fleiss' κ of several raters grading the same tiles (statsmodels).

    Parameters
    ----------
    ratings : array_like, shape (n_tiles, n_raters)
        Grades; every tile must be rated by every rater (no NaN), as Fleiss' κ
        assumes a constant number of ratings per subject.

    Returns
    -------
    float
        κ (1 perfect agreement, 0 chance level); NaN when all ratings fall in a
        single grade (agreement by chance is then 1 and κ is undefined).

    Raises
    ------
    InputError
        Fewer than two raters, missing ratings, or grades outside ``grades``.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    values = np.atleast_2d(np.asarray(ratings, dtype=float))
    if values.ndim != 2 or values.shape[1] < 2:
        raise InputError(f"Fleiss' κ needs two or more raters, got ratings of shape {values.shape}")
    if not np.isfinite(values).all():
        raise InputError("Fleiss' κ needs every tile rated by every rater (missing ratings found)")
    grades = sorted(int(g) for g in grades)
    if not np.isin(values, grades).all():
        raise InputError(f"ratings must be grades {grades}")
    table = np.stack([(values == g).sum(axis=1) for g in grades], axis=1)
    p_category = table.sum(axis=0) / table.sum()
    if np.isclose((p_category**2).sum(), 1.0):
        return float("nan")
    return float(_fleiss(table, method="fleiss"))


@dataclass(frozen=True)
class TileLabels:
    """Grades of a tile dataset (``labels.csv``).

    Attributes
    ----------
    table : pandas.DataFrame
        Indexed by ``tile_id`` with a ``grade`` column (the training grade) and the
        rater columns when there were raters.
    raters : tuple of str
        Names of the rater columns (empty when the file held grades only).
    kappa : float or None
        Fleiss' κ over the raters (None with fewer than two raters, or when some
        ratings are missing).
    tie : str
        The tie rule used for the majority vote.
    """

    table: object
    raters: tuple[str, ...]
    kappa: float | None
    tie: str

    @property
    def grades(self):
        """``tile_id`` → training grade (pandas Series of int)."""
        return self.table["grade"]


def read_labels(path: str | Path, *, tie: TieRule = "median") -> TileLabels:
    """Read ``labels.csv``: ``tile_id, grade`` or ``tile_id, rater_1 … rater_k``.

    When rater columns are present, the training grade is their majority vote
    (:func:`majority_grade`, tie rule ``tie``), and a ``grade`` column in the file,
    if any, is checked against it. Fleiss' κ is computed when there are at least
    two raters and no missing ratings.

    Raises
    ------
    InputError
        Missing file or columns, duplicate tile ids, or grades outside 1–4.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError("labels file not found", path=path)
    try:
        table = pd.read_csv(path, dtype={"tile_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read labels CSV: {exc}", path=path) from exc
    if "tile_id" not in table.columns:
        raise InputError(f"labels need a 'tile_id' column, found {list(table.columns)}", path=path)
    if table["tile_id"].duplicated().any():
        dup = table.loc[table["tile_id"].duplicated(), "tile_id"].iloc[0]
        raise InputError(f"tile id {dup!r} appears more than once", path=path)
    raters = tuple(c for c in table.columns if _RATER_COLUMN.match(str(c)))
    kappa = None
    try:
        if raters:
            ratings = table[list(raters)].to_numpy(dtype=float)
            vote = majority_grade(ratings, tie=tie)
            if "grade" in table.columns:
                given = pd.to_numeric(table["grade"], errors="coerce").to_numpy()
                if not np.array_equal(given, vote):
                    raise InputError(
                        f"'grade' column disagrees with the majority of {', '.join(raters)} "
                        f"(tie rule {tie!r}) for {int((given != vote).sum())} tile(s)"
                    )
            table["grade"] = vote
            if len(raters) >= 2 and np.isfinite(ratings).all():
                kappa = fleiss_kappa(ratings)
        elif "grade" in table.columns:
            grade = pd.to_numeric(table["grade"], errors="coerce").to_numpy(dtype=float)
            if not np.isin(grade, GRADES).all():
                bad = table.loc[~np.isin(grade, GRADES), "grade"].iloc[0]
                raise InputError(f"grades must be 1, 2, 3 or 4, found {bad!r}")
            table["grade"] = grade.astype(int)
        else:
            raise InputError(
                "labels need a 'grade' column or rater columns 'rater_1', 'rater_2', …; "
                f"found {list(table.columns)}"
            )
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.reason, path=path) from exc
        raise
    return TileLabels(table=table.set_index("tile_id"), raters=raters, kappa=kappa, tie=tie)
