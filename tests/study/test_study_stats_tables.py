"""Statistics tables (CSV / XLSX), small-sample warnings, CIs of d, group-name safety."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from skinoct.errors import InputError
from skinoct.study.stats import (
    SMALL_N,
    check_group_sizes,
    cohens_d,
    group_statistics,
    read_scores,
)
from skinoct.study.stats_tables import STATS_TABLES, write_statistics


def cohort(sizes: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, (g, n) in enumerate(sizes.items()):
        for i, v in enumerate(rng.normal(2 + 0.5 * k, 0.4, n)):
            rows.append({"subject": f"s{k}_{i}", "group": g, "score": float(v)})
    return pd.DataFrame(rows)


def test_cohens_d_confidence_interval_is_hedges_olkin():
    """CI = d ± t(1 - α/2, n_a + n_b - 2) · sqrt((n_a + n_b)/(n_a n_b) + d²/(2 (n_a + n_b)))."""
    a, b = np.array([1.0, 3, 5, 7, 4, 2]), np.array([2.0, 6, 8, 9, 7])
    r = cohens_d(a, b, confidence=0.9)
    na, nb = a.size, b.size
    se = math.sqrt((na + nb) / (na * nb) + r["d"] ** 2 / (2 * (na + nb)))
    t = scipy.stats.t.ppf(0.95, na + nb - 2)
    assert r["d_lower"] == pytest.approx(r["d"] - t * se, rel=1e-10)
    assert r["d_upper"] == pytest.approx(r["d"] + t * se, rel=1e-10)
    assert r["reliable"] is True  # 6 and 5 values
    assert cohens_d([1.0, 2], [3.0, 5])["reliable"] is False
    constant = cohens_d([1.0, 1, 1], [1.0, 1, 1])
    assert math.isnan(constant["d"]) and math.isnan(constant["d_lower"])


def test_two_subjects_per_group_warn_and_flag_cohens_d():
    """The issue's case: n = 2 per group gives |d| in the tens; it must be flagged."""
    df = pd.DataFrame({"subject": list("abcd"), "group": ["y", "y", "o", "o"],
                       "score": [3.0, 3.02, 2.0, 2.05]})  # fmt: skip
    s = group_statistics(df)
    (row,) = s.cohen_d
    assert abs(row["d"]) > 20 and row["reliable"] is False
    assert row["d_lower"] < row["d"] < row["d_upper"]
    assert len(s.warnings) == 1 and "y (n = 2)" in s.warnings[0] and "o (n = 2)" in s.warnings[0]
    record = s.to_dict()
    assert record["warnings"] == s.warnings and record["small_n"] == SMALL_N
    big = group_statistics(cohort({"a": SMALL_N, "b": SMALL_N}))
    assert big.warnings == [] and big.cohen_d[0]["reliable"] is True


def test_write_statistics_csv_and_xlsx_match_stats_json(tmp_path):
    s = group_statistics(cohort({"young": 6, "old": 5, "=cmd|' /C calc'!A0": 4}))
    written = write_statistics(tmp_path, s)
    names = {p.name for p in written}
    expected = {"stats.json", *STATS_TABLES}
    if importlib.util.find_spec("openpyxl") is None:  # XLSX only where openpyxl is installed
        expected.discard("stats.xlsx")
    assert expected <= names
    saved = json.loads((tmp_path / "stats.json").read_text())
    pairs = pd.read_csv(tmp_path / "stats_pairwise.csv", dtype=str, keep_default_na=False)
    assert len(pairs) == 3
    for row, t, c in zip(pairs.to_dict("records"), saved["tukey"], saved["cohen_d"], strict=True):
        assert float(row["tukey_p_adj"]) == pytest.approx(t["p_adj"], rel=1e-9)
        assert float(row["cohen_d"]) == pytest.approx(c["d"], rel=1e-9)
        assert row["d_reliable"] == str(c["reliable"])
    desc = pd.read_csv(tmp_path / "stats_descriptive.csv", dtype=str, keep_default_na=False)
    # the hostile group name is neutralised for spreadsheets, and raw in the JSON
    assert desc["group"].tolist() == ["young", "old", "'=cmd|' /C calc'!A0"]
    assert "=cmd|' /C calc'!A0" in saved["groups"]
    assert desc["small_sample"].tolist() == ["False", "False", "True"]
    tests = pd.read_csv(tmp_path / "stats_tests.csv")
    assert tests["statistic"].tolist() == pytest.approx([s.anova["F"], s.kruskal["H"]], rel=1e-9)
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(tmp_path / "stats.xlsx")
    assert book.sheetnames == ["descriptive", "tests", "pairwise", "warnings"]
    cells = [c.value for c in book["descriptive"]["A"]]
    assert cells[-1] == "'=cmd|' /C calc'!A0"
    assert all(c.data_type != "f" for row in book["pairwise"].iter_rows() for c in row)
    assert "(n = 4)" in book["warnings"]["A2"].value


@pytest.mark.parametrize("name", ["NA", "nan", "null", "None", "N/A", ""])
def test_group_names_that_look_missing_are_groups(tmp_path, name):
    path = tmp_path / "scores.csv"
    df = cohort({"young": 3, name or "x": 3})
    df.to_csv(path, index=False)
    if not name:  # an empty group cell is an error, not a group named "nan"
        path.write_text(path.read_text().replace(",x,", ",,"))
        with pytest.raises(InputError, match="empty group"):
            read_scores(path)
        return
    table = read_scores(path)
    assert table["group"].tolist() == ["young"] * 3 + [name] * 3
    s = group_statistics(table)
    assert s.order == ["young", name]


def test_read_scores_missing_score_cells_are_missing(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("subject,group,score\na,NA,1\nb,NA,\nc,NA,nan\nd,x,2\ne,x,3\nf,NA,4\n")
    table = read_scores(path)
    assert table["group"].tolist() == ["NA", "NA", "NA", "x", "x", "NA"]
    assert np.isnan(table["score"].to_numpy()[[1, 2]]).all()
    assert group_statistics(table).excluded == ["b", "c"]


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["young"] * 3 + ["old"] * 3, []),
        (["young"] * 3 + ["old"] * 3 + ["yuong"], ["group 'yuong' has 1 subject(s)",
                                                     "did you mean 'young'?"]),
        (["Old"] + ["old"] * 3 + ["young"] * 2, ["did you mean 'old'?"]),
        (["young"] * 4, ["need at least two groups"]),
        (["a"] * 3 + ["b"], ["group 'b' has 1 subject(s), the statistics need 2"]),
    ],
)
def test_check_group_sizes_with_did_you_mean(groups, expected):
    problems = check_group_sizes(groups)
    text = "; ".join(problems)
    for part in expected:
        assert part in text
    if not expected:
        assert problems == []
    if "b" in groups:
        assert "did you mean" not in text  # 'a' and 'b' are not near-duplicates
