"""Group statistics against scipy / statsmodels and against seed 002's published summaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from skinoct.errors import InputError
from skinoct.study.stats import (
    cohens_d,
    dunn_test,
    group_mean_profiles,
    group_statistics,
    read_scores,
    significance_stars,
)

# Seed 002 §3.2 / Figure 3B: mean ± SD, n = 12 per group.
PUBLISHED = {"young": (2.77, 0.33), "old": (2.04, 0.36), "old_photoexposed": (1.68, 0.37)}
N_PUBLISHED = 12


def exact_sample(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    """n values whose sample mean and SD (ddof=1) are exactly ``mean`` and ``sd``."""
    x = np.random.default_rng(seed).standard_normal(n)
    return (x - x.mean()) / x.std(ddof=1) * sd + mean


def published_cohort() -> pd.DataFrame:
    rows = []
    for k, (g, (m, s)) in enumerate(PUBLISHED.items()):
        for i, v in enumerate(exact_sample(m, s, N_PUBLISHED, seed=k)):
            rows.append({"subject": f"{g}_{i:02d}", "group": g, "score": v})
    return pd.DataFrame(rows)


def random_cohort(seed: int = 3, sizes=(7, 9, 6, 8)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, n in enumerate(sizes):
        for i, v in enumerate(rng.normal(2 + 0.3 * k, 0.5, n).round(1)):  # rounding -> ties
            rows.append({"subject": f"g{k}_{i}", "group": f"g{k}", "score": v})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ published summaries


def test_published_group_summaries_reproduce_the_papers_conclusions():
    """Seed 002 §3.2: young better than both old groups (p < 0.0001 overall ANOVA),
    old photo-exposed worse than old (Tukey p < 0.05)."""
    s = group_statistics(published_cohort())
    for g, (m, sd) in PUBLISHED.items():
        assert s.groups[g]["mean"] == pytest.approx(m, abs=1e-12)
        assert s.groups[g]["sd"] == pytest.approx(sd, abs=1e-12)
        assert s.groups[g]["n"] == N_PUBLISHED
    assert s.anova["p"] < 1e-4
    young_old = s.pair("young", "old")
    young_photo = s.pair("young", "old_photoexposed")
    old_photo = s.pair("old", "old_photoexposed")
    assert young_old["reject"] and young_old["p_adj"] < 0.001
    assert young_photo["reject"] and young_photo["p_adj"] < 0.001
    assert old_photo["reject"] and old_photo["p_adj"] < 0.05
    assert [young_old["stars"], young_photo["stars"], old_photo["stars"]] == ["***", "***", "*"]


def test_anova_and_tukey_follow_analytically_from_the_published_summaries():
    """F and Tukey p depend only on means, SDs and n: compute them from the paper's
    numbers with textbook formulas and the studentized range distribution."""
    means = np.array([m for m, _ in PUBLISHED.values()])
    sds = np.array([s for _, s in PUBLISHED.values()])
    n, k = N_PUBLISHED, len(PUBLISHED)
    grand = means.mean()
    ms_between = n * ((means - grand) ** 2).sum() / (k - 1)
    ms_within = ((n - 1) * sds**2).sum() / (k * n - k)
    f_expected = ms_between / ms_within
    s = group_statistics(published_cohort())
    assert s.anova["F"] == pytest.approx(f_expected, rel=1e-10)
    assert s.anova["p"] == pytest.approx(scipy.stats.f.sf(f_expected, k - 1, k * n - k), rel=1e-8)
    se = math.sqrt(ms_within / n)
    for row in s.tukey:
        i, j = list(PUBLISHED).index(row["group1"]), list(PUBLISHED).index(row["group2"])
        q = abs(means[j] - means[i]) / se
        p_expected = scipy.stats.studentized_range.sf(q, k, k * n - k)
        assert row["meandiff"] == pytest.approx(means[j] - means[i], abs=1e-12)
        assert row["p_adj"] == pytest.approx(p_expected, rel=1e-3, abs=1e-6)


# ------------------------------------------------------------------ against libraries


def test_anova_matches_scipy_and_statsmodels_ols():
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    df = random_cohort()
    s = group_statistics(df)
    groups = [df.loc[df.group == g, "score"] for g in s.order]
    f, p = scipy.stats.f_oneway(*groups)
    assert s.anova["F"] == pytest.approx(f, rel=1e-12)
    assert s.anova["p"] == pytest.approx(p, rel=1e-10)
    table = sm.stats.anova_lm(ols("score ~ C(group)", data=df).fit(), typ=1)
    assert s.anova["F"] == pytest.approx(table.loc["C(group)", "F"], rel=1e-9)
    eta2 = table.loc["C(group)", "sum_sq"] / table["sum_sq"].sum()
    assert s.anova["eta_squared"] == pytest.approx(eta2, rel=1e-9)
    assert (s.anova["df_between"], s.anova["df_within"]) == (3, len(df) - 4)


def test_tukey_matches_scipy_tukey_hsd_in_the_requested_order():
    df = random_cohort(sizes=(8, 8, 8, 8))
    order = ["g3", "g0", "g2", "g1"]  # not alphabetical: exercises the sign flip
    s = group_statistics(df, order=order)
    ref = scipy.stats.tukey_hsd(*[df.loc[df.group == g, "score"] for g in order])
    ci = ref.confidence_interval(confidence_level=0.95)
    assert len(s.tukey) == 6
    for row in s.tukey:
        i, j = order.index(row["group1"]), order.index(row["group2"])
        assert i < j
        # scipy's statistic[i, j] is mean_i - mean_j; ours is mean_group2 - mean_group1.
        assert row["meandiff"] == pytest.approx(-ref.statistic[i, j], abs=1e-12)
        assert row["p_adj"] == pytest.approx(ref.pvalue[i, j], rel=2e-3, abs=1e-4)
        assert row["lower"] == pytest.approx(-ci.high[i, j], rel=1e-3)
        assert row["upper"] == pytest.approx(-ci.low[i, j], rel=1e-3)
        assert row["reject"] == (ref.pvalue[i, j] < 0.05)


def test_kruskal_matches_scipy_and_epsilon_squared():
    df = random_cohort()
    s = group_statistics(df)
    h, p = scipy.stats.kruskal(*[df.loc[df.group == g, "score"] for g in s.order])
    assert s.kruskal["H"] == pytest.approx(h, rel=1e-12)
    assert s.kruskal["p"] == pytest.approx(p, rel=1e-10)
    assert s.kruskal["epsilon_squared"] == pytest.approx(h / (len(df) - 1), rel=1e-12)


def test_dunn_hand_computed_example():
    """Ranks 1..9 in three blocks: mean ranks 2, 5, 8; var = N(N+1)/12 = 7.5;
    SE = sqrt(7.5 · 2/3) = sqrt(5)."""
    values = {"a": np.array([1.0, 2, 3]), "b": np.array([4.0, 5, 6]), "c": np.array([7.0, 8, 9])}
    rows = {(r["group1"], r["group2"]): r for r in dunn_test(values, adjust="bonferroni")}
    assert rows[("a", "b")]["z"] == pytest.approx(3 / math.sqrt(5), rel=1e-12)
    assert rows[("a", "c")]["z"] == pytest.approx(6 / math.sqrt(5), rel=1e-12)
    assert rows[("b", "c")]["z"] == pytest.approx(3 / math.sqrt(5), rel=1e-12)
    p_ab = 2 * scipy.stats.norm.sf(3 / math.sqrt(5))
    assert rows[("a", "b")]["p"] == pytest.approx(p_ab, rel=1e-12)
    assert rows[("a", "b")]["p_adj"] == pytest.approx(min(1.0, 3 * p_ab), rel=1e-12)


def test_dunn_two_groups_z_squared_equals_tie_corrected_kruskal_h():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 11).astype(float)  # many ties
    b = rng.integers(2, 8, 9).astype(float)
    (row,) = dunn_test({"a": a, "b": b})
    h, p = scipy.stats.kruskal(a, b)
    assert row["z"] ** 2 == pytest.approx(h, rel=1e-10)
    assert row["p"] == pytest.approx(p, rel=1e-8)


def test_dunn_holm_adjustment_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    df = random_cohort()
    s = group_statistics(df, dunn_adjust="holm")
    raw = [r["p"] for r in s.dunn]
    _, expected, _, _ = multipletests(raw, method="holm")
    np.testing.assert_allclose([r["p_adj"] for r in s.dunn], expected, rtol=1e-12)
    b = group_statistics(df, dunn_adjust="bonferroni")
    np.testing.assert_allclose(
        [r["p_adj"] for r in b.dunn], np.minimum(1, np.array(raw) * len(raw)), rtol=1e-12
    )


def test_cohens_d_analytic():
    """means 2 and 4, SDs 1 and 1 -> pooled SD 1, d = 2; g = 2 (1 - 3/(4·6 - 9)) = 1.6."""
    r = cohens_d([1.0, 2, 3], [3.0, 4, 5])
    assert r["d"] == pytest.approx(2.0)
    assert r["hedges_g"] == pytest.approx(1.6)
    # unequal sizes: pooled variance weights by n - 1
    a, b = np.array([1.0, 3, 5, 7]), np.array([2.0, 2, 8])
    sp = math.sqrt((3 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 5)
    assert cohens_d(a, b)["d"] == pytest.approx((b.mean() - a.mean()) / sp)


@pytest.mark.parametrize(
    ("p", "stars"),
    [
        (0.0009, "***"),
        (0.001, "**"),
        (0.0099, "**"),
        (0.049, "*"),
        (0.05, "ns"),
        (float("nan"), "ns"),
        (None, "ns"),
    ],
)
def test_significance_stars(p, stars):
    assert significance_stars(p) == stars


# ------------------------------------------------------------------ input handling


def test_missing_scores_are_excluded_and_listed():
    df = published_cohort()
    df.loc[3, "score"] = np.nan
    s = group_statistics(df)
    assert s.excluded == [df.loc[3, "subject"]]
    assert s.groups["young"]["n"] == N_PUBLISHED - 1
    assert s.to_dict()["n_subjects"] == 3 * N_PUBLISHED - 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns="group"), "missing column"),
        (lambda d: d.assign(subject="same"), "more than once"),
        (lambda d: d.assign(group="one"), "at least two groups"),
        (lambda d: d[(d.group != "old") | (d.subject == "old_00")], r"old \(n=1\)"),
        (lambda d: d.assign(score=d.score.astype(object).where(d.index != 4, "abc")), "row"),
    ],
)
def test_bad_tables_raise_input_error(change, match):
    with pytest.raises(InputError, match=match):
        group_statistics(change(published_cohort()))


def test_bad_order_and_options():
    df = published_cohort()
    with pytest.raises(InputError, match="no scores: elderly"):
        group_statistics(df, order=["young", "old", "old_photoexposed", "elderly"])
    with pytest.raises(InputError, match="not in order: old_photoexposed"):
        group_statistics(df, order=["young", "old"])
    with pytest.raises(ValueError, match="alpha"):
        group_statistics(df, alpha=1.5)
    with pytest.raises(ValueError, match="dunn_adjust"):
        group_statistics(df, dunn_adjust="sidak")


def test_read_scores_reports_the_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("subject,group,score\na,x,1\nb,x,two\n")
    with pytest.raises(InputError, match=r"s\.csv: score is not a number in row\(s\) 3"):
        read_scores(path)
    with pytest.raises(InputError, match="file not found"):
        read_scores(tmp_path / "none.csv")


def test_group_mean_profiles():
    prof = pd.DataFrame(
        {
            "subject": ["a", "a", "b", "b", "c", "c"],
            "group": ["y", "y", "y", "y", "o", "o"],
            "depth_um": [0.0, 1, 0, 1, 0, 1],
            "score": [3.0, 2.0, 4.0, np.nan, 1.0, 1.5],
        }
    )
    m = group_mean_profiles(prof, order=["o", "y"])
    assert m["group"].tolist() == ["o", "o", "y", "y"]
    assert m["mean"].tolist() == [1.0, 1.5, 3.5, 2.0]
    assert m["n"].tolist() == [1, 1, 2, 1]


# ------------------------------------------------------------------ CLI


def test_cli_stats_json_matches_library(run_cli, tmp_path):
    df = published_cohort()
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    code, out, err = run_cli("study", "stats", path, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert set(record["groups"]) == set(PUBLISHED)
    assert record["groups"]["old"]["mean"] == pytest.approx(2.04)
    assert record["groups"]["old"]["sd"] == pytest.approx(0.36)
    assert record["groups"]["old"]["n"] == 12
    expected = group_statistics(df)
    assert record["anova"]["F"] == pytest.approx(expected.anova["F"])
    assert record["anova"]["p"] == pytest.approx(expected.anova["p"])
    assert {tuple(sorted((t["group1"], t["group2"]))) for t in record["tukey"]} == {
        ("old", "young"),
        ("old_photoexposed", "young"),
        ("old", "old_photoexposed"),
    }
    assert all({"meandiff", "p_adj", "reject"} <= set(t) for t in record["tukey"])


def test_cli_stats_table_and_figures(run_cli, tmp_path):
    df = published_cohort()
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    depths = np.arange(0.0, 71.0)
    prof = pd.DataFrame(
        [
            {"subject": r.subject, "group": r.group, "depth_um": d, "score": r.score - d / 100}
            for r in df.itertuples()
            for d in depths
        ]
    )
    prof.to_csv(tmp_path / "profiles.csv", index=False)
    out = tmp_path / "stats"
    code, stdout, err = run_cli("study", "stats", path, "--out", out, "--alpha", "0.01")
    assert code == 0, err
    assert "ANOVA" in stdout and "old_photoexposed" in stdout
    saved = json.loads((out / "stats.json").read_text())
    assert saved["alpha"] == 0.01
    # at alpha 0.01 old vs photo-exposed (p ≈ 0.046) is no longer rejected
    row = next(
        t for t in saved["tukey"] if {t["group1"], t["group2"]} == {"old", "old_photoexposed"}
    )
    assert row["reject"] is False and 0.01 < row["p_adj"] < 0.05
    from PIL import Image

    for name in ("figure_3b_group_means.png", "figure_3a_profiles.png"):
        with Image.open(out / name) as im:
            assert im.width > 300 and im.height > 300
            assert np.asarray(im.convert("L")).std() > 10  # not blank


def test_cli_stats_bad_input_one_line_exit_2(run_cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("subject,group\na,x\n")
    code, out, err = run_cli("study", "stats", path)
    assert code == 2
    assert "bad.csv" in err and "missing column" in err
    assert len(err.strip().splitlines()) == 1
