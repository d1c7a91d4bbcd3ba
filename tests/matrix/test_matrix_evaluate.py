"""Grading metrics equal scikit-learn's; confusion figure; predictions CSV."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from skinoct.errors import InputError
from skinoct.matrix import evaluate_predictions, plot_confusion, read_predictions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn_on_random_grades(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(1, 5, 300)
    pred = np.where(rng.random(300) < 0.7, true, rng.integers(1, 5, 300))
    m = evaluate_predictions(true, pred)
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=[1, 2, 3, 4])
    assert m.accuracy == pytest.approx(accuracy_score(true, pred))
    assert m.macro_precision == pytest.approx(p.mean())
    assert m.macro_recall == pytest.approx(r.mean())
    assert m.macro_f1 == pytest.approx(f.mean())
    assert m.quadratic_kappa == pytest.approx(cohen_kappa_score(true, pred, weights="quadratic"))
    np.testing.assert_array_equal(m.confusion_matrix, confusion_matrix(true, pred))
    for i, grade in enumerate("1234"):
        assert m.per_class[grade]["precision"] == pytest.approx(p[i])
        assert m.per_class[grade]["recall"] == pytest.approx(r[i])
        assert m.per_class[grade]["support"] == s[i]
    np.testing.assert_allclose(m.confusion_percent.sum(axis=1), 100.0)
    assert m.mean_absolute_error == pytest.approx(np.abs(true - pred).mean())


def test_paper_figure_2_rows_reproduce_table_2_recall():
    # Seed 002 §3.1 gives the full counts of the first two rows of Figure 2.
    rows = {1: [927, 169, 31, 0], 2: [151, 1564, 118, 2]}
    true = [g for g, counts in rows.items() for j, c in enumerate(counts) for _ in range(c)]
    pred = [j + 1 for g, counts in rows.items() for j, c in enumerate(counts) for _ in range(c)]
    m = evaluate_predictions(true, pred)
    assert m.per_class["1"]["recall"] == pytest.approx(0.82, abs=0.005)  # Table 2
    assert m.per_class["2"]["recall"] == pytest.approx(0.85, abs=0.005)
    assert m.per_class["1"]["support"] == 1127 and m.per_class["2"]["support"] == 1835


def test_undefined_precision_is_nan_and_listed():
    m = evaluate_predictions([1, 2, 3, 4], [1, 1, 1, 1])
    assert np.isnan(m.per_class["2"]["precision"])
    assert any("grade 2" in note for note in m.undefined)
    # the macro mean leaves undefined values out (only grade 1 is defined: 0.25)
    assert m.macro_precision == pytest.approx(0.25)
    record = m.to_dict()
    json.dumps(record)  # plain JSON types
    assert set(record) >= {
        "accuracy",
        "macro_precision",
        "macro_recall",
        "per_class",
        "confusion_matrix",
    }


def test_bad_inputs():
    with pytest.raises(InputError, match="grades"):
        evaluate_predictions([1, 2], [1, 5])
    with pytest.raises(InputError, match="2 true grades but 1"):
        evaluate_predictions([1, 2], [1])
    with pytest.raises(InputError, match="no predictions"):
        evaluate_predictions([], [])


def test_confusion_figure_is_written(tmp_path):
    m = evaluate_predictions([1, 1, 2, 3, 4, 4], [1, 2, 2, 3, 4, 3])
    path = plot_confusion(m, tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_read_predictions_joins_labels_by_tile_id(tmp_path):
    pd.DataFrame({"tile_id": ["a", "b", "c"], "grade": [1, 2, 4]}).to_csv(
        tmp_path / "pred.csv", index=False
    )
    pd.DataFrame({"tile_id": ["c", "b", "a"], "grade": [3, 2, 1]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    true, pred = read_predictions(tmp_path / "pred.csv", labels=tmp_path / "labels.csv")
    assert true.tolist() == [1, 2, 3] and pred.tolist() == [1, 2, 4]
    (tmp_path / "bad.csv").write_text("true,guess\n1,2\n")
    with pytest.raises(InputError, match="columns 'true' and 'pred'"):
        read_predictions(tmp_path / "bad.csv")
