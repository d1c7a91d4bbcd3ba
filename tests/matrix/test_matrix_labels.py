"""Majority grade over raters, Fleiss' κ, labels.csv."""

import numpy as np
import pandas as pd
import pytest

from skinoct.errors import InputError
from skinoct.matrix import fleiss_kappa, majority_grade, read_labels

# Fleiss (1971) worked example as given on Wikipedia ("Fleiss' kappa"): 10 subjects,
# 14 raters, 5 categories; counts of raters per category; κ = 0.210.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def ratings_from_counts(counts):
    return np.array([np.repeat(np.arange(1, len(row) + 1), row) for row in counts])


def test_majority_clear_cases():
    ratings = [[1, 1, 1, 2, 3, 4], [4, 4, 3, 3, 3, 2], [2, 2, 2, 2, 2, 2]]
    assert majority_grade(ratings).tolist() == [1, 3, 2]


@pytest.mark.parametrize(
    ("ratings", "tie", "expected"),
    [
        ([1, 2, 2, 3, 3, 4], "median", 2),  # modes 2, 3; median 2.5 → equally close → lower
        ([2, 2, 3, 3, 4, 4], "median", 3),  # modes 2, 3, 4; median 3
        ([1, 1, 1, 4, 4, 4], "median", 1),  # modes 1, 4; median 2.5 → lower
        ([1, 1, 3, 3, 4, 4], "median", 3),  # modes 1, 3, 4; median 3
        ([1, 2, 2, 3, 3, 4], "lower", 2),
        ([1, 2, 2, 3, 3, 4], "upper", 3),
    ],
)
def test_majority_tie_rules(ratings, tie, expected):
    assert majority_grade([ratings], tie=tie).tolist() == [expected]


def test_majority_ignores_missing_ratings_and_rejects_bad_ones():
    assert majority_grade([[np.nan, 3, 3, 2]]).tolist() == [3]
    with pytest.raises(InputError, match="no rating"):
        majority_grade([[np.nan, np.nan]])
    with pytest.raises(InputError, match="grades"):
        majority_grade([[1, 5, 2]])
    with pytest.raises(InputError, match="tie must be"):
        majority_grade([[1, 2]], tie="random")


def test_fleiss_kappa_matches_the_published_example():
    ratings = ratings_from_counts(FLEISS_COUNTS)
    assert fleiss_kappa(ratings, grades=(1, 2, 3, 4, 5)) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_limits():
    perfect = np.repeat(np.array([[1], [2], [3], [4]]), 6, axis=1)
    assert fleiss_kappa(perfect) == pytest.approx(1.0)
    assert np.isnan(fleiss_kappa(np.full((5, 6), 2)))  # one grade only: undefined
    with pytest.raises(InputError, match="two or more raters"):
        fleiss_kappa([[1], [2]])
    with pytest.raises(InputError, match="missing"):
        fleiss_kappa([[1, np.nan], [2, 2]])


def test_read_labels_with_raters(tmp_path):
    table = pd.DataFrame(
        {
            "tile_id": ["a", "b", "c", "d"],
            "rater_1": [1, 2, 3, 4],
            "rater_2": [1, 2, 3, 4],
            "rater_3": [2, 2, 4, 3],
        }
    )
    table.to_csv(tmp_path / "labels.csv", index=False)
    labels = read_labels(tmp_path / "labels.csv")
    assert labels.raters == ("rater_1", "rater_2", "rater_3")
    assert labels.grades.to_dict() == {"a": 1, "b": 2, "c": 3, "d": 4}
    expected = fleiss_kappa(table[["rater_1", "rater_2", "rater_3"]].to_numpy())
    assert labels.kappa == pytest.approx(expected)


def test_read_labels_checks_a_given_grade_against_the_vote(tmp_path):
    pd.DataFrame({"tile_id": ["a"], "rater_1": [1], "rater_2": [1], "grade": [2]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    with pytest.raises(InputError, match="disagrees with the majority"):
        read_labels(tmp_path / "labels.csv")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("tile_id,score\na,1\n", "'grade' column or rater columns"),
        ("tile_id,grade\na,1\na,2\n", "more than once"),
        ("tile_id,grade\na,7\n", "grades must be 1, 2, 3 or 4"),
        ("id,grade\na,1\n", "'tile_id' column"),
    ],
)
def test_read_labels_bad_files(tmp_path, content, match):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_labels(path)
    assert info.value.path == path
