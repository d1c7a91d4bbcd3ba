"""The demo's comparison with the phantom's ground truth (the full demo: test_study_real_models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinoct.study.demo import compare_with_truth


def _truth(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g, m in (("young", 2.8), ("old", 2.0), ("old_photoexposed", 1.6)):
        for i, q in enumerate(rng.normal(m, 0.15, 5)):
            rows.append({"subject": f"{g}{i}", "group": g, "mean_q": q})
    return pd.DataFrame(rows)


def test_a_faithful_measurement_matches_the_truth():
    truth = _truth()
    scores = truth.rename(columns={"mean_q": "score"})
    scores["score"] = (
        0.9 * scores["score"] + 0.2 + np.random.default_rng(1).normal(0, 0.02, len(truth))
    )
    c = compare_with_truth(scores, truth)
    assert c["order_true"] == ["young", "old", "old_photoexposed"]
    assert c["order_matches"] and c["decisions_match"] and c["significant_order_matches"]
    assert c["n"] == 15 and c["spearman_rho"] > 0.95
    assert all(p["true_reject"] for p in c["tukey"])
    assert c["true"]["young"] == pytest.approx(truth[truth.group == "young"].mean_q.mean())


def test_a_wrong_measurement_is_reported():
    truth = _truth()
    scores = truth.rename(columns={"mean_q": "score"})
    swap = {"young": "old_photoexposed", "old_photoexposed": "young"}
    # measured scores of the young group are those of the photo-exposed and vice versa
    by_group = {g: scores[scores.group == g]["score"].to_numpy() for g in swap}
    for g, other in swap.items():
        scores.loc[scores.group == g, "score"] = by_group[other]
    c = compare_with_truth(scores, truth)
    assert not c["order_matches"] and not c["significant_order_matches"]
    assert c["order_measured"][0] == "old_photoexposed"
    assert c["spearman_rho"] < 0
    # only subjects present in both tables are compared
    c = compare_with_truth(scores.iloc[1:], truth)
    assert c["n"] == 14
