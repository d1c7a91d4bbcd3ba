"""Reading a scores table and checking that its groups support the statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skinoct.errors import InputError

__all__ = ["check_group_sizes", "read_scores", "validate_scores"]


def read_scores(path: str | Path) -> Any:
    """Read a scores table (CSV with at least ``subject``, ``group``, ``score``).

    Every cell is read as text, so a group named ``NA``, ``nan`` or ``null`` is a
    group, not a missing value; an empty score (or ``nan``) is a missing score.

    Returns
    -------
    pandas.DataFrame
        With ``subject`` and ``group`` as strings and ``score`` as float.

    Raises
    ------
    InputError
        Missing file or columns, non-numeric scores, duplicate subjects.
    """
    from skinoct.io import read_csv_table

    df = read_csv_table(path, numeric=())  # all text; the score is checked below
    return validate_scores(df, path=path)


def validate_scores(df, *, path=None):
    """Check a scores DataFrame and return a copy with text names and float scores.

    Raises
    ------
    InputError
        Missing columns, empty groups, non-numeric scores, duplicate subjects
        (``path`` is named in the message).
    """
    import pandas as pd

    missing = [c for c in ("subject", "group", "score") if c not in df.columns]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; a scores table needs subject, group, score "
            f"(found: {', '.join(map(str, df.columns)) or 'none'})",
            path=path,
        )
    df = df.copy()
    for column in ("subject", "group"):  # a NaN read by someone else's reader is no name
        df[column] = df[column].map(lambda v: "" if _is_missing(v) else str(v).strip())
    bad_group = df.index[df["group"] == ""].tolist()
    if bad_group:
        raise InputError(f"empty group in row(s) {_rows(bad_group)}", path=path)
    text = df["score"].astype(str).str.strip()
    absent = df["score"].isna() | text.isin(["", "nan", "NaN", "NA", "None", "null"])
    numeric = pd.to_numeric(df["score"].where(~absent), errors="coerce")
    bad = df.index[numeric.isna() & ~absent].tolist()
    if bad:
        raise InputError(
            f"score is not a number in row(s) {_rows(bad)} (e.g. {df['score'][bad[0]]!r})",
            path=path,
        )
    df["score"] = numeric.astype(float)
    dup = df["subject"][df["subject"].duplicated()].unique().tolist()
    if dup:
        raise InputError(
            f"subject(s) listed more than once: {', '.join(dup[:10])}"
            + (" …" if len(dup) > 10 else "")
            + " (one-way ANOVA needs one score per subject)",
            path=path,
        )
    return df


def _rows(index: list[int]) -> str:
    # Row numbers as a user sees them in the CSV (header is line 1).
    shown = ", ".join(str(i + 2) for i in index[:10])
    return shown + (" …" if len(index) > 10 else "")


def check_group_sizes(groups: Iterable[str], *, minimum: int = 2) -> list[str]:
    """Problems that stop the group statistics of a study with these subjects' groups.

    Parameters
    ----------
    groups : iterable of str
        The group of every subject (e.g. a manifest's ``group`` column).
    minimum : int
        Scores a group needs (2: a standard deviation).

    Returns
    -------
    list of str
        Empty when the statistics can be computed. A group too small for them whose
        name is close to another group's (``yuong`` / ``young``, ``Old`` / ``old``) gets
        a "did you mean" (:func:`difflib.get_close_matches`).
    """
    import difflib

    sizes: dict[str, int] = {}
    for g in groups:
        sizes[str(g)] = sizes.get(str(g), 0) + 1
    problems = []
    if len(sizes) < 2:
        problems.append(f"need at least two groups to compare, found {len(sizes)}: "
                        + ", ".join(repr(g) for g in sizes))  # fmt: skip
    for g, n in sizes.items():
        if n >= minimum:
            continue
        others = {o.casefold(): o for o in sizes if o != g}
        close = difflib.get_close_matches(g.casefold(), list(others), n=1, cutoff=0.75)
        hint = f"; did you mean {others[close[0]]!r}?" if close else ""
        problems.append(f"group {g!r} has {n} subject(s), the statistics need {minimum}{hint}")
    return problems


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
