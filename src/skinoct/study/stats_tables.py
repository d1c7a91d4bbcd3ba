"""Group statistics as tables a statistician can open: CSV, and XLSX when possible.

:func:`write_statistics` writes, beside ``stats.json``:

``stats_descriptive.csv``
    one row per group: n, mean, SD, SEM, median, min, max, ``small_sample``;
``stats_tests.csv``
    the omnibus tests: one-way ANOVA (F, p, η²) and Kruskal–Wallis (H, p, ε²);
``stats_pairwise.csv``
    one row per pair: Tukey HSD (mean difference, CI, adjusted p), Dunn (z, p,
    adjusted p), Cohen's d with its CI, Hedges' g and ``d_reliable``;
``stats.xlsx``
    the three tables and the warnings as sheets (only with openpyxl installed).

Text cells are neutralised against spreadsheet formula injection
(:func:`skinoct.io.safe_csv_cell`), in the CSV files and in the workbook alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skinoct.io import atomic_path, neutralise_table, write_csv_table, write_json

__all__ = ["STATS_TABLES", "statistics_tables", "write_statistics"]

#: Files written beside ``stats.json``.
STATS_TABLES = (
    "stats_descriptive.csv",
    "stats_tests.csv",
    "stats_pairwise.csv",
    "stats.xlsx",
)


def statistics_tables(stats) -> dict[str, Any]:
    """The descriptive, omnibus and pairwise tables of a :class:`GroupStatistics`.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``descriptive``, ``tests``, ``pairwise``.
    """
    import pandas as pd

    from skinoct.study._pairwise import SMALL_N

    descriptive = pd.DataFrame(
        [{"group": g, **d, "small_sample": d["n"] < SMALL_N} for g, d in stats.groups.items()],
        columns=["group", "n", "mean", "sd", "sem", "median", "min", "max", "small_sample"],
    )
    a, k = stats.anova, stats.kruskal
    tests = pd.DataFrame(
        [
            {"test": "one-way ANOVA", "statistic_name": "F", "statistic": a["F"],
             "df1": a["df_between"], "df2": a["df_within"], "p": a["p"],
             "effect_size_name": "eta_squared", "effect_size": a["eta_squared"]},
            {"test": "Kruskal-Wallis", "statistic_name": "H", "statistic": k["H"],
             "df1": k["df"], "df2": None, "p": k["p"],
             "effect_size_name": "epsilon_squared", "effect_size": k["epsilon_squared"]},
        ]
    )  # fmt: skip
    rows = []
    for t in stats.tukey:
        d = stats.pair(t["group1"], t["group2"], test="dunn")
        c = stats.pair(t["group1"], t["group2"], test="cohen_d")
        rows.append(
            {
                "group1": t["group1"], "group2": t["group2"], "meandiff": t["meandiff"],
                "tukey_lower": t["lower"], "tukey_upper": t["upper"],
                "tukey_p_adj": t["p_adj"], "tukey_reject": t["reject"], "tukey_stars": t["stars"],
                "dunn_z": d["z"], "dunn_p": d["p"], "dunn_p_adj": d["p_adj"],
                "dunn_reject": d["reject"], "dunn_stars": d["stars"],
                "cohen_d": c["d"], "cohen_d_lower": c.get("d_lower"),
                "cohen_d_upper": c.get("d_upper"), "hedges_g": c["hedges_g"],
                "d_reliable": c.get("reliable", True),
            }
        )  # fmt: skip
    return {"descriptive": descriptive, "tests": tests, "pairwise": pd.DataFrame(rows)}


def write_statistics(out_dir: str | Path, stats, *, xlsx: bool = True) -> list[Path]:
    """Write ``stats.json`` and the tables of :mod:`skinoct.study.stats_tables`.

    Parameters
    ----------
    out_dir : str or Path
    stats : GroupStatistics
    xlsx : bool
        Also write ``stats.xlsx`` when openpyxl is installed.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    written = [write_json(out_dir / "stats.json", stats.to_dict())]
    tables = statistics_tables(stats)
    for name, table in tables.items():
        written.append(write_csv_table(out_dir / f"stats_{name}.csv", table, float_format="%.10g"))
    if xlsx and _has_openpyxl():
        written.append(_write_xlsx(out_dir / "stats.xlsx", tables, stats))
    return written


def _has_openpyxl() -> bool:
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


def _write_xlsx(path: Path, tables: dict, stats) -> Path:
    import pandas as pd

    notes = pd.DataFrame({"warning": stats.warnings or ["none"]})
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as writer:
        for name, table in {**tables, "warnings": notes}.items():
            # openpyxl would store a text cell starting with "=" as a formula
            neutralise_table(table).to_excel(writer, sheet_name=name, index=False)
    return path
