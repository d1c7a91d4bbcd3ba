"""The library-backed statistics equal the hand-written ones they replaced.

``data/stats_golden_v0.json`` was written by the hand-written Dunn's test, Cohen's d,
Hedges' g and η² (skinoct before scikit-posthocs and pingouin took them over), on four
cohorts: ties, unequal sizes with a custom order and Bonferroni, the seed-002
published summaries, and two subjects per group.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from skinoct.study.stats import group_statistics

GOLDEN = json.loads((Path(__file__).parent / "data" / "stats_golden_v0.json").read_text())


def _assert_same(new, old, where=""):
    if isinstance(old, dict):
        for key, value in old.items():  # new keys (CIs, warnings) may be added
            _assert_same(new[key], value, f"{where}.{key}")
    elif isinstance(old, list):
        assert len(new) == len(old), where
        for k, (a, b) in enumerate(zip(new, old, strict=True)):
            _assert_same(a, b, f"{where}[{k}]")
    elif isinstance(old, float) and not isinstance(old, bool):
        if math.isnan(old):
            assert math.isnan(new), where
        else:
            assert new == pytest.approx(old, rel=1e-9, abs=1e-12), where
    else:
        assert new == old, where


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_statistics_equal_the_hand_written_golden_values(case):
    spec = GOLDEN[case]
    stats = group_statistics(pd.DataFrame(spec["input"]), **spec["kwargs"]).to_dict()
    _assert_same(stats, spec["stats"], case)
