"""CSV tables that a spreadsheet cannot be made to execute, and that read back as text.

Writing: a text cell that a spreadsheet would take for a formula (first character
``= + - @``, tab or carriage return) is prefixed with a single quote, the OWASP
CSV-injection rule, so that Excel, LibreOffice and Google Sheets show it as text.
Numbers are written as numbers (a negative metric stays ``-1.5``); only text cells are
touched, and the raw values stay in the JSON records beside the tables.

Reading: every cell is read as text first (``keep_default_na=False``), so a group or
subject named ``NA``, ``nan``, ``null`` or ``None`` stays that name; only the columns
asked for are converted to numbers, where an empty cell or ``nan`` means missing.
A quote added on writing is removed again, so a table round-trips exactly.

References
----------
OWASP, "CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skinoct.errors import InputError
from skinoct.io._atomic import atomic_path

__all__ = [
    "FORMULA_TRIGGERS",
    "neutralise_table",
    "read_csv_table",
    "restore_csv_cell",
    "safe_csv_cell",
    "write_csv_table",
]

#: First characters that make a spreadsheet evaluate a cell (OWASP).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_MISSING = ("", "nan", "NaN", "NA", "N/A", "null", "None", "<NA>")


def safe_csv_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would execute.

    Non-text values are returned unchanged. Text that already starts with quotes
    followed by a trigger gets one more quote, so :func:`restore_csv_cell` inverts
    this function exactly.

    Examples
    --------
    >>> safe_csv_cell("=HYPERLINK(1)"), safe_csv_cell("young"), safe_csv_cell(-1.5)
    ("'=HYPERLINK(1)", 'young', -1.5)
    """
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def restore_csv_cell(value: Any) -> Any:
    """Invert :func:`safe_csv_cell` on a cell read back from a table."""
    if isinstance(value, str) and value.startswith("'") and safe_csv_cell(value[1:]) == value:
        return value[1:]
    return value


def neutralise_table(table):
    """A copy of a DataFrame with :func:`safe_csv_cell` applied to its text cells and names.

    Numeric and boolean columns are left as they are (a negative number is no formula).
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    out = table.copy()
    for column in out.columns:
        if not (is_numeric_dtype(out[column]) or is_bool_dtype(out[column])):
            out[column] = out[column].astype(object).map(safe_csv_cell)
    out.columns = [safe_csv_cell(str(c)) for c in out.columns]
    return out


def write_csv_table(path: str | Path, table, *, float_format: str = "%.6g") -> Path:
    """Write a DataFrame as CSV atomically, its text cells neutralised.

    Parameters
    ----------
    path : str or Path
    table : pandas.DataFrame
    float_format : str
        Format of floating-point cells.

    Returns
    -------
    Path
        ``path``.
    """
    out = neutralise_table(table)
    path = Path(path)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, float_format=float_format)
    return path


def read_csv_table(
    path: str | Path,
    *,
    numeric: Iterable[str] | None = None,
    text: Iterable[str] = ("subject", "group", "site", "visit"),
):
    """Read a CSV with every cell as text, then convert the numeric columns.

    Parameters
    ----------
    path : str or Path
    numeric : iterable of str, optional
        Columns to convert to float (a cell that is not a number raises). Default:
        every column not in ``text`` whose cells all parse as numbers or are missing
        (and to bool those holding only ``True`` / ``False``).
    text : iterable of str
        Columns that always stay text (group and subject names).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        Missing or unreadable file; a cell of a ``numeric`` column that is no number.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read CSV: {str(exc).splitlines()[0]}", path=path) from exc
    df.columns = [restore_csv_cell(c) for c in df.columns]
    text = set(text)
    for column in df.columns:
        df[column] = df[column].map(restore_csv_cell)
    explicit = numeric is not None
    for column in list(numeric) if explicit else [c for c in df.columns if c not in text]:
        if column not in df.columns:
            continue
        cells = df[column].str.strip()
        missing = cells.isin(_MISSING)
        values = pd.to_numeric(cells.where(~missing), errors="coerce")
        bad = values.isna() & ~missing
        if not explicit and bad.any() and cells[~missing].isin(["True", "False"]).all():
            df[column] = cells.map({"True": True, "False": False}).where(~missing, None)
            if not missing.any():
                df[column] = df[column].astype(bool)
            continue  # a yes/no column, as pandas writes booleans
        if bad.any():
            if explicit:
                row = int(bad.to_numpy().nonzero()[0][0])
                raise InputError(
                    f"{column} is not a number in row {row + 2} (e.g. {df[column].iloc[row]!r})",
                    path=path,
                )
            continue  # a text column
        df[column] = values.astype(float)
    return df
