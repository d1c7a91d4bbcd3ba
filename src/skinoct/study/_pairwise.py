"""Pairwise comparisons between groups: Cohen's d with a CI, Dunn's test, stars.

Computed by pingouin (effect sizes and their confidence intervals) and
scikit-posthocs (Dunn's test); the outputs equal those of the hand-written versions
they replaced (tests/study/data/stats_golden_v0.json).

References
----------
.. [1] O. J. Dunn, "Multiple comparisons using rank sums", Technometrics
   6(3):241–252, 1964.
.. [2] S. Holm, Scand. J. Statist. 6(2):65–70, 1979.
.. [3] J. Cohen, *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed.,
   1988; L. V. Hedges, J. Educ. Stat. 6(2):107–128, 1981; L. V. Hedges and I. Olkin,
   *Statistical Methods for Meta-Analysis*, 1985, p. 86 (CI of d).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

__all__ = ["SMALL_N", "cohens_d", "dunn_test", "significance_stars"]

Adjust = Literal["holm", "bonferroni"]
_ADJUST = ("holm", "bonferroni")
#: Groups smaller than this get a small-sample warning; effect sizes between them are
#: flagged ``reliable: False`` (below 5 per group a d estimate is off by more than its
#: own size often enough that it should not be read as a measurement).
SMALL_N = 5


def significance_stars(p: float | None) -> str:
    """``'***'`` for p < 0.001, ``'**'`` for p < 0.01, ``'*'`` for p < 0.05, else ``'ns'``."""
    if p is None or not np.isfinite(p):
        return "ns"
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return "ns"


def _pairs(order: list[str]) -> list[tuple[str, str]]:
    return [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))]


def cohens_d(a, b, *, confidence: float = 0.95) -> dict[str, float]:
    """Cohen's d of ``b`` versus ``a`` with the pooled SD, Hedges' g and a CI of d.

    ``d = (mean(b) - mean(a)) / s_p`` with
    ``s_p = sqrt(((n_a - 1) s_a² + (n_b - 1) s_b²) / (n_a + n_b - 2))``;
    ``g = d · (1 - 3 / (4 (n_a + n_b) - 9))``; the confidence interval is
    ``d ± t · SE`` with ``SE = sqrt((n_a + n_b) / (n_a n_b) + d² / (2 (n_a + n_b)))``
    (Hedges & Olkin 1985, p. 86), computed by :func:`pingouin.compute_effsize` and
    :func:`pingouin.compute_esci`. NaN when the pooled SD is zero. ``reliable`` is
    False when either group has fewer than :data:`SMALL_N` values: d is then far
    from its population value (its CI shows how far).
    """
    import pingouin

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        raise ValueError(f"Cohen's d needs at least two values per group, got {na} and {nb}")
    nan = math.nan
    if a.var() == 0 and b.var() == 0:
        d = g = lo = hi = nan
    else:
        d = float(pingouin.compute_effsize(b, a, eftype="cohen"))
        g = float(pingouin.compute_effsize(b, a, eftype="hedges"))
        lo, hi = (float(v) for v in pingouin.compute_esci(
            stat=d, nx=nb, ny=na, eftype="cohen", confidence=confidence, decimals=15))  # fmt: skip
    return {"d": d, "hedges_g": g, "d_lower": lo, "d_upper": hi, "reliable": min(na, nb) >= SMALL_N}


def dunn_test(
    values: dict[str, np.ndarray],
    *,
    alpha: float = 0.05,
    adjust: Adjust = "holm",
) -> list[dict[str, Any]]:
    """Dunn's (1964) pairwise comparisons of mean ranks after Kruskal–Wallis.

    All observations are ranked together (mid-ranks, tie-corrected variance); the
    two-sided p-values come from :func:`scikit_posthocs.posthoc_dunn` and are adjusted
    over all pairs with Holm's step-down method (default) or Bonferroni
    (:func:`statsmodels.stats.multitest.multipletests`). ``z`` is the standard normal
    deviate of that p-value, signed like the difference of mean ranks (group2 minus
    group1). With two groups, z² equals the tie-corrected Kruskal–Wallis H.

    Parameters
    ----------
    values : dict of str to array
        Scores per group, in the order wanted for the output.
    alpha : float
        Level for ``reject``.
    adjust : {'holm', 'bonferroni'}
        Family-wise error adjustment.

    Returns
    -------
    list of dict
        ``group1``, ``group2``, ``z``, ``p`` (unadjusted), ``p_adj``, ``reject``,
        ``stars`` (from ``p_adj``).

    References
    ----------
    O. J. Dunn, Technometrics 6(3):241–252, 1964; S. Holm, Scand. J. Statist.
    6:65–70, 1979.
    """
    import pandas as pd
    import scikit_posthocs
    import scipy.stats
    from statsmodels.stats.multitest import multipletests

    if adjust not in _ADJUST:
        raise ValueError(f"adjust must be one of {_ADJUST}, got {adjust!r}")
    names = list(values)
    arrays = [np.asarray(values[g], dtype=float) for g in names]
    # integer codes as group labels: no name is ever parsed or sorted as something else
    codes = np.repeat(np.arange(len(names)), [a.size for a in arrays])
    long = pd.DataFrame({"score": np.concatenate(arrays), "code": codes})
    tied = np.ptp(long["score"].to_numpy()) == 0  # every value equal: no evidence at all
    raw = None if tied else scikit_posthocs.posthoc_dunn(long, val_col="score", group_col="code")
    ranks = scipy.stats.rankdata(long["score"])
    mean_rank = [ranks[long["code"].to_numpy() == k].mean() for k in range(len(names))]
    rows = []
    for i, j in _pairs(list(range(len(names)))):
        p = 1.0 if raw is None else float(raw.loc[i, j])
        z = float(np.sign(mean_rank[j] - mean_rank[i]) * scipy.stats.norm.isf(p / 2))
        rows.append({"group1": names[i], "group2": names[j], "z": z, "p": p})
    if rows:
        reject, p_adj, _, _ = multipletests([r["p"] for r in rows], alpha=alpha, method=adjust)
        for r, rej, pa in zip(rows, reject, p_adj, strict=True):
            r.update(p_adj=float(pa), reject=bool(rej), stars=significance_stars(float(pa)))
    return rows
