"""Subject q profiles, simulated raters and cohort files."""

import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import read_volume
from skinoct.phantom import (
    GROUPS,
    VolumeParams,
    grade_of,
    rater_grades,
    render_cohort,
    subject_q_profile,
)

DEPTHS = np.arange(0.0, 71.0)
TINY = VolumeParams(size_um=(140.0, 24.0, 40.0))


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_means_and_spread_follow_seed_002(group):
    # Seed 002, Fig. 3B: subject means 2.77 ± 0.33, 2.04 ± 0.36, 1.68 ± 0.37.
    rng = np.random.default_rng(0)
    means = np.array([subject_q_profile(group, DEPTHS, rng=rng).mean() for _ in range(300)])
    model = GROUPS[group]
    # 300 subjects: standard error of the mean ≈ 0.02, of the s.d. ≈ 0.015; the
    # truncation to [1.1, 3.9] shifts the lowest group's mean by < 0.03.
    assert means.mean() == pytest.approx(model.mean_q, abs=0.06)
    assert means.std() == pytest.approx(model.sd_q, abs=0.05)


def test_old_groups_are_lower_and_more_altered_deeper():
    rng = np.random.default_rng(1)
    profiles = {
        g: np.array([subject_q_profile(g, DEPTHS, rng=rng) for _ in range(100)]) for g in GROUPS
    }
    drop = {g: (p[:, 0] - p[:, -1]).mean() for g, p in profiles.items()}
    mean = {g: p.mean() for g, p in profiles.items()}
    assert mean["young"] > mean["old"] > mean["old_photoexposed"]
    assert 0 < drop["young"] < drop["old"] < drop["old_photoexposed"]
    for p in profiles.values():
        assert p.min() >= 1.0 and p.max() <= 4.0


def test_profile_is_deterministic_and_evaluated_at_given_depths():
    a = subject_q_profile("old", [0.0, 35.5, 300.0], rng=np.random.default_rng(3))
    b = subject_q_profile("old", np.arange(0.0, 301.0), rng=np.random.default_rng(3))
    assert a[0] == b[0] and a[2] == b[300]
    assert a[1] == pytest.approx(0.5 * (b[35] + b[36]))
    with pytest.raises(InputError, match="group must be one of young, old, old_photoexposed"):
        subject_q_profile("teen", DEPTHS, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="depths_um must lie in"):
        subject_q_profile("old", [-1.0], rng=np.random.default_rng(0))


def test_raters_and_majority():
    rng = np.random.default_rng(0)
    q = rng.uniform(1.0, 4.0, 6000)
    grades, majority = rater_grades(q, rng=rng)
    assert grades.shape == (6000, 6) and majority.shape == (6000,)
    assert set(np.unique(grades)) <= {1, 2, 3, 4}
    truth = grade_of(q)
    rater_agreement = (grades == truth[:, None]).mean()
    majority_agreement = (majority == truth).mean()
    # Documented figures (±0.03): ~67 % per rater, ~81 % for the majority.
    assert rater_agreement == pytest.approx(0.67, abs=0.03)
    assert majority_agreement == pytest.approx(0.81, abs=0.03)
    assert majority_agreement > rater_agreement
    # The majority is a most frequent rating of each tile.
    counts = np.stack([(grades == g).sum(axis=1) for g in (1, 2, 3, 4)], axis=1)
    assert np.all(counts[np.arange(len(q)), majority - 1] == counts.max(axis=1))


def test_tie_rule_closest_to_median_then_lower():
    # Zero noise and bias: every rater gives the true grade.
    grades, majority = rater_grades([1.0, 2.6, 4.0], noise_sd=0.0, bias_sd=0.0,
                                    rng=np.random.default_rng(0))  # fmt: skip
    np.testing.assert_array_equal(majority, [1, 3, 4])
    assert np.all(grades == majority[:, None])
    from skinoct.matrix import majority_grade

    # 3 vs 3 tie between grades 1 and 4: median 2.5 is equally close -> lower grade.
    assert majority_grade([[1, 1, 1, 4, 4, 4]], tie="median").tolist() == [1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q": [0.5]}, r"q must be a 1-D array of qualities in \[1, 4\]"),
        ({"q": [2.0], "n_raters": 0}, r"n_raters must be in \[1, 50\]"),
        ({"q": [2.0], "n_raters": 2.0}, "n_raters must be an integer"),
        ({"q": [2.0], "noise_sd": -1.0}, "noise_sd"),
    ],
)
def test_bad_rater_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        rater_grades(rng=np.random.default_rng(0), **kwargs)


def test_render_cohort_files(tmp_path):
    manifest = render_cohort(tmp_path, subjects_per_group=2, volume_params=TINY, seed=4,
                             write_masks=True)  # fmt: skip
    assert manifest == tmp_path / "manifest.csv"
    lines = manifest.read_text().splitlines()
    assert lines[0] == "subject,group,volume,site"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[1] for r in rows] == ["young"] * 2 + ["old"] * 2 + ["old_photoexposed"] * 2
    truth = (tmp_path / "ground_truth.csv").read_text().splitlines()
    assert truth[0] == "subject,group,mean_q,q_dej,q_70um"
    for (subject, group, rel, site), line in zip(rows, truth[1:], strict=True):
        vol = read_volume(tmp_path / rel)
        assert vol.shape == (140, 24, 40) and vol.spacing_um == (1.0, 1.0, 1.0)
        gt = np.load(tmp_path / "ground_truth" / f"{subject}.npz")
        assert gt["dej_um"].shape == (24, 40)
        assert gt["depths_um"][0] == 0 and gt["q_profile"].shape == gt["depths_um"].shape
        assert line.split(",")[:2] == [subject, group]
        mean_q = float(line.split(",")[2])
        assert mean_q == pytest.approx(gt["q_profile"][:71].mean(), abs=1e-6)
        masks = read_volume(tmp_path / "masks" / f"{subject}.ome.tif").data
        # DEJ ground truth matches the label volume: rows above the DEJ = ceil(dej).
        above = (masks <= 2).sum(axis=0)
        dej = gt["dej_um"]
        ok = np.isfinite(dej)
        np.testing.assert_array_equal(above[ok], np.ceil(dej[ok]))
        assert site == "face"


def test_cohort_is_read_by_the_study_pipeline(tmp_path):
    from skinoct.study.run import read_manifest

    render_cohort(tmp_path, groups=("young", "old"), subjects_per_group=1, volume_params=TINY)
    manifest = read_manifest(tmp_path / "manifest.csv")
    assert [t.group for t in manifest.tasks] == ["young", "old"]
    assert all(t.volume.is_file() for t in manifest.tasks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": ("young", "teen")}, "group must be one of"),
        ({"groups": ()}, "at least one group"),
        ({"groups": ("old", "old")}, "given twice"),
        ({"subjects_per_group": 0}, r"subjects_per_group must be in \[1, 1000\]"),
        ({"seed": -2}, "seed must be a non-negative integer"),
        ({"volume_params": {"size_um": 1}}, "volume_params must be a VolumeParams"),
    ],
)
def test_bad_cohort_arguments(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        render_cohort(tmp_path, **{"volume_params": TINY, **kwargs})
    assert not (tmp_path / "manifest.csv").exists()
