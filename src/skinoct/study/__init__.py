"""Clinical-study pipeline: group statistics, figures, cohort runs, HTML report.

Seed 002 §2.3: each volume gives a dermal-quality depth profile below the DEJ and a
mean score; groups of subjects are compared with one-way ANOVA and Tukey's HSD.
"""

from skinoct.study.stats import (
    GroupStatistics,
    cohens_d,
    dunn_test,
    group_mean_profiles,
    group_statistics,
    read_scores,
    significance_stars,
)

__all__ = [
    "GroupStatistics",
    "cohens_d",
    "dunn_test",
    "group_mean_profiles",
    "group_statistics",
    "read_scores",
    "significance_stars",
]
