"""Group statistics of a study: descriptive, parametric, non-parametric, effect sizes.

The analysis of seed 002 §2.3.3: per-group mean ± SD of the subjects' mean dermal
quality scores, one-way ANOVA followed by Tukey's HSD for all pairs (significance at
p < 0.05; * p < 0.05, ** p < 0.01, *** p < 0.001). Added here: the Kruskal–Wallis test
with Dunn's post-hoc comparisons as the non-parametric alternative, and effect sizes
(η² for the ANOVA, ε² for Kruskal–Wallis, Cohen's d and Hedges' g with confidence
intervals for each pair), and a plain warning when groups are small (< ``SMALL_N``).
Tukey's HSD comes from statsmodels, Dunn's test from scikit-posthocs, η² and Cohen's d
from pingouin (see :mod:`skinoct.study._pairwise`).

References
----------
.. [1] J. W. Tukey, "Comparing individual means in the analysis of variance",
   Biometrics 5(2):99–114, 1949; C. Y. Kramer, Biometrics 12(3):307–310, 1956
   (unequal group sizes).
.. [2] W. H. Kruskal and W. A. Wallis, "Use of ranks in one-criterion variance
   analysis", J. Am. Stat. Assoc. 47(260):583–621, 1952.
.. [3] O. J. Dunn, "Multiple comparisons using rank sums", Technometrics
   6(3):241–252, 1964.
.. [4] S. Holm, "A simple sequentially rejective multiple test procedure",
   Scand. J. Statist. 6(2):65–70, 1979.
.. [5] J. Cohen, *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed.,
   1988 (d with pooled SD); L. V. Hedges, J. Educ. Stat. 6(2):107–128, 1981 (g).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skinoct.errors import InputError
from skinoct.study._pairwise import (
    _ADJUST,
    SMALL_N,
    Adjust,
    _pairs,
    cohens_d,
    dunn_test,
    significance_stars,
)
from skinoct.study._scores import check_group_sizes, read_scores, validate_scores

__all__ = [
    "SMALL_N",
    "GroupStatistics",
    "check_group_sizes",
    "cohens_d",
    "dunn_test",
    "group_mean_profiles",
    "group_statistics",
    "read_scores",
    "significance_stars",
]


@dataclass(frozen=True)
class GroupStatistics:
    """Statistics comparing the groups of a study.

    Attributes
    ----------
    groups : dict
        ``{name: {"mean", "sd", "n", "sem", "median", "min", "max"}}`` in group order;
        ``sd`` is the sample standard deviation (ddof = 1).
    anova : dict
        One-way ANOVA: ``F``, ``p``, ``df_between``, ``df_within``, ``eta_squared``.
    tukey : list of dict
        Tukey HSD for every pair: ``group1``, ``group2``, ``meandiff`` (mean of group2
        minus mean of group1), ``p_adj``, ``lower``, ``upper`` (family-wise
        ``1 - alpha`` confidence interval), ``reject``, ``stars``.
    kruskal : dict
        Kruskal–Wallis: ``H`` (tie-corrected), ``p``, ``df``, ``epsilon_squared``.
    dunn : list of dict
        Dunn's test for every pair: ``group1``, ``group2``, ``z``, ``p``, ``p_adj``,
        ``reject``, ``stars``; adjustment named by ``dunn_adjust``.
    cohen_d : list of dict
        ``group1``, ``group2``, ``d`` (pooled SD, sign as ``meandiff``), ``hedges_g``,
        ``d_lower``, ``d_upper`` (``1 - alpha`` confidence interval of d), ``reliable``
        (both groups have at least :data:`SMALL_N` scores).
    alpha : float
        Significance level used for ``reject``.
    dunn_adjust : {'holm', 'bonferroni'}
    excluded : list of str
        Subjects left out because their score is missing (NaN).
    warnings : list of str
        Plain-language cautions, e.g. groups smaller than :data:`SMALL_N`.
    """

    groups: dict[str, dict[str, float]]
    anova: dict[str, float]
    tukey: list[dict[str, Any]]
    kruskal: dict[str, float]
    dunn: list[dict[str, Any]]
    cohen_d: list[dict[str, Any]]
    alpha: float
    dunn_adjust: str
    excluded: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def order(self) -> list[str]:
        """Group names in the order used throughout."""
        return list(self.groups)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the ``skinoct study stats --json`` output)."""
        return {
            "groups": self.groups,
            "anova": self.anova,
            "tukey": self.tukey,
            "kruskal": self.kruskal,
            "dunn": self.dunn,
            "dunn_adjust": self.dunn_adjust,
            "cohen_d": self.cohen_d,
            "alpha": self.alpha,
            "n_subjects": int(sum(g["n"] for g in self.groups.values())),
            "excluded": self.excluded,
            "warnings": self.warnings,
            "small_n": SMALL_N,
        }

    def pair(self, group1: str, group2: str, *, test: str = "tukey") -> dict[str, Any]:
        """The row of ``test`` ('tukey', 'dunn' or 'cohen_d') for a pair, either order."""
        for row in getattr(self, test):
            if {row["group1"], row["group2"]} == {group1, group2}:
                return row
        raise KeyError(f"no {test} row for {group1!r} vs {group2!r}")


def group_statistics(
    scores,
    *,
    alpha: float = 0.05,
    order: list[str] | None = None,
    dunn_adjust: Adjust = "holm",
) -> GroupStatistics:
    """Compare the groups of a study on their subjects' scores.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per subject with columns ``subject``, ``group`` and ``score``.
        Rows whose score is missing (NaN) are left out and listed in ``excluded``.
    alpha : float
        Significance level for ``reject`` (and the Tukey confidence intervals).
    order : list of str, optional
        Group order for the output; default order of first appearance.
    dunn_adjust : {'holm', 'bonferroni'}
        Multiple-comparison adjustment of Dunn's p-values.

    Returns
    -------
    GroupStatistics

    Raises
    ------
    InputError
        Missing columns, duplicate subjects, fewer than two groups, a group with
        fewer than two scores, or an ``order`` that does not name the groups.
    ValueError
        ``alpha`` outside (0, 1) or an unknown ``dunn_adjust``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"subject": list("abcdef"), "group": ["y"] * 3 + ["o"] * 3,
    ...                    "score": [3.0, 2.8, 3.1, 2.0, 2.2, 1.9]})
    >>> s = group_statistics(df)
    >>> round(s.groups["y"]["mean"], 3), s.tukey[0]["reject"]
    (2.967, True)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if dunn_adjust not in _ADJUST:
        raise ValueError(f"dunn_adjust must be one of {_ADJUST}, got {dunn_adjust!r}")
    df = validate_scores(scores)
    missing = df["score"].isna()
    excluded = df.loc[missing, "subject"].tolist()
    df = df.loc[~missing]
    order = _group_order(df, order)
    values = {g: df.loc[df["group"] == g, "score"].to_numpy(float) for g in order}
    small = [f"{g} (n={v.size})" for g, v in values.items() if v.size < 2]
    if small:
        groups_of_rows = df.loc[df["group"].isin(order), "group"]
        hints = [p.split("; ", 1)[1] for p in check_group_sizes(groups_of_rows) if "; did" in p]
        raise InputError(f"every group needs at least two scores: {', '.join(small)}"
                         + "".join(f" ({h})" for h in hints))  # fmt: skip
    groups = {g: _describe(v) for g, v in values.items()}
    effect = [
        {"group1": g1, "group2": g2, **cohens_d(values[g1], values[g2], confidence=1 - alpha)}
        for g1, g2 in _pairs(order)
    ]
    return GroupStatistics(
        groups=groups,
        anova=_anova(values),
        tukey=_tukey(values, order, alpha),
        kruskal=_kruskal(values),
        dunn=dunn_test(values, alpha=alpha, adjust=dunn_adjust),
        cohen_d=effect,
        alpha=float(alpha),
        dunn_adjust=dunn_adjust,
        excluded=excluded,
        warnings=_small_sample_warnings(groups),
    )


def _group_order(df, order: list[str] | None) -> list[str]:
    """The groups to compare, in output order; at least two, matching the data."""
    present = list(dict.fromkeys(df["group"]))
    if order is None:
        order = present
    else:
        order = [str(g) for g in order]
        unknown = sorted(set(present) - set(order))
        absent = [g for g in order if g not in present]
        if unknown or absent:
            parts = (
                f"not in order: {', '.join(unknown)}" if unknown else "",
                f"no scores: {', '.join(absent)}" if absent else "",
            )
            raise InputError(
                "group order does not match the data: " + "; ".join(p for p in parts if p)
            )
    if len(order) < 2:
        raise InputError(f"need at least two groups to compare, found {len(order)}: {order}")
    return order


def _anova(values: dict[str, np.ndarray]) -> dict[str, Any]:
    """One-way ANOVA; eta squared = SS_between / SS_total (pingouin's np2, which is η²
    in a one-way design)."""
    import scipy.stats

    n_total = sum(v.size for v in values.values())
    f_stat, f_p = scipy.stats.f_oneway(*values.values())
    return {
        "F": _f(f_stat),
        "p": _f(f_p),
        "df_between": len(values) - 1,
        "df_within": int(n_total - len(values)),
        "eta_squared": _eta_squared(values),
    }


def _tukey(values: dict[str, np.ndarray], order: list[str], alpha: float) -> list[dict]:
    """Tukey HSD (statsmodels), reported in our group order."""
    from statsmodels.stats.multicomp import pairwise_tukeyhsd

    all_values = np.concatenate(list(values.values()))
    labels = np.concatenate([[g] * v.size for g, v in values.items()])
    tk = pairwise_tukeyhsd(all_values, labels, alpha=alpha)
    names = [str(g) for g in tk.groupsunique]
    by_pair = {}
    for k, (i, j) in enumerate(zip(*np.triu_indices(len(names), 1), strict=True)):
        by_pair[(names[i], names[j])] = (
            float(tk.meandiffs[k]),
            float(tk.pvalues[k]),
            float(tk.confint[k][0]),
            float(tk.confint[k][1]),
            bool(tk.reject[k]),
        )
    tukey = []
    for g1, g2 in _pairs(order):
        if (g1, g2) in by_pair:
            diff, p, lo, hi, rej = by_pair[(g1, g2)]
        else:  # statsmodels sorted them the other way round: flip the sign
            diff, p, lo, hi, rej = by_pair[(g2, g1)]
            diff, lo, hi = -diff, -hi, -lo
        tukey.append(
            {
                "group1": g1, "group2": g2, "meandiff": diff, "p_adj": p,
                "lower": lo, "upper": hi, "reject": rej, "stars": significance_stars(p),
            }
        )  # fmt: skip
    return tukey


def _kruskal(values: dict[str, np.ndarray]) -> dict[str, Any]:
    """Kruskal–Wallis with epsilon squared (H / (n - 1), Tomczak & Tomczak 2014)."""
    import scipy.stats

    all_values = np.concatenate(list(values.values()))
    if np.ptp(all_values) > 0:
        h_stat, h_p = scipy.stats.kruskal(*values.values())
    else:  # every score identical: no evidence of a difference
        h_stat, h_p = 0.0, 1.0
    return {
        "H": _f(h_stat),
        "p": _f(h_p),
        "df": len(values) - 1,
        "epsilon_squared": _f(h_stat / (all_values.size - 1)),
    }


def _eta_squared(values: dict[str, np.ndarray]) -> float:
    import pandas as pd
    import pingouin

    all_values = np.concatenate(list(values.values()))
    if np.ptp(all_values) == 0:
        return math.nan
    codes = np.repeat(np.arange(len(values)), [v.size for v in values.values()])
    long = pd.DataFrame({"score": all_values, "code": codes})
    with warnings.catch_warnings():  # pingouin's own pandas deprecations, not ours
        warnings.simplefilter("ignore")
        table = pingouin.anova(data=long, dv="score", between="code", detailed=True)
    return _f(table.loc[0, "np2"])


def _small_sample_warnings(groups: dict[str, dict]) -> list[str]:
    small = [f"{g} (n = {d['n']})" for g, d in groups.items() if d["n"] < SMALL_N]
    if not small:
        return []
    return [
        f"small groups: {', '.join(small)}. With fewer than {SMALL_N} subjects per group the "
        "p-values rest on very little data and Cohen's d can be many times its true size; "
        "read the confidence intervals, not the point values."
    ]


def _f(value) -> float:
    return float(value) if value is not None and np.isfinite(value) else math.nan


def _describe(v: np.ndarray) -> dict[str, float]:
    sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
    return {
        "mean": float(v.mean()),
        "sd": sd,
        "n": int(v.size),
        "sem": sd / math.sqrt(v.size) if v.size > 1 else math.nan,
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def group_mean_profiles(profiles, *, order: list[str] | None = None):
    """Mean depth profile of each group (seed 002 Figure 3A).

    The value at each depth is the mean over the group's subjects of their score at
    that depth (subjects without a value there are left out of that depth).

    Parameters
    ----------
    profiles : pandas.DataFrame
        Long table with columns ``subject``, ``group``, ``depth_um``, ``score``.
    order : list of str, optional
        Group order; default order of first appearance.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``depth_um``, ``mean``, ``sd`` (ddof = 1), ``n``; sorted by
        group order then depth.

    Raises
    ------
    InputError
        Missing columns.
    """
    import pandas as pd

    missing = [c for c in ("subject", "group", "depth_um", "score") if c not in profiles.columns]
    if missing:
        raise InputError(
            f"profiles table lacks column(s) {', '.join(missing)} "
            "(needs subject, group, depth_um, score)"
        )
    df = profiles.dropna(subset=["score"]).copy()
    df["group"] = df["group"].astype(str)
    present = list(dict.fromkeys(df["group"]))
    order = present if order is None else [g for g in order if g in present]
    agg = (
        df.groupby(["group", "depth_um"])["score"]
        .agg(mean="mean", sd=lambda s: s.std(ddof=1), n="count")
        .reset_index()
    )
    agg["group"] = pd.Categorical(agg["group"], categories=order, ordered=True)
    agg = agg.dropna(subset=["group"]).sort_values(["group", "depth_um"])
    agg["group"] = agg["group"].astype(str)
    agg["n"] = agg["n"].astype(int)
    return agg.reset_index(drop=True)
