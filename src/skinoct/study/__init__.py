"""Volume analysis and the clinical-study pipeline (seed 000 + seed 002).

- :func:`analyze_volume` — one volume: layer surfaces, 3-D morphometry, dermal
  quality depth profile below the local DEJ and the volume's mean score;
- :func:`run_study` — a manifest of volumes, in local processes or on a Dask
  cluster, resumable; ``scores.csv`` and ``profiles.csv``; :func:`plan_workers` — how
  it splits the CPUs between worker processes and threads (``workers='auto'``);
- :func:`group_statistics` — mean ± SD, one-way ANOVA + Tukey HSD, Kruskal–Wallis +
  Dunn, η², ε², Cohen's d with CIs, small-sample warnings; :func:`write_statistics`
  writes them as ``stats.json`` + CSV (+ XLSX) tables;
- :func:`write_report` — the self-contained ``report.html``;
- :func:`run_demo` — a phantom cohort from rendering to report, checked against its
  ground truth.

Importing this package loads neither torch nor the models.
"""

from skinoct.study._workers import WorkerPlan, plan_workers
from skinoct.study.analyze import AnalysisOptions, analyze_volume, model_fingerprint
from skinoct.study.demo import compare_with_truth, run_demo
from skinoct.study.report import render_report, write_report
from skinoct.study.run import (
    Manifest,
    ManifestError,
    StudyResult,
    collect_results,
    read_manifest,
    run_study,
)
from skinoct.study.stats import (
    GroupStatistics,
    check_group_sizes,
    cohens_d,
    dunn_test,
    group_mean_profiles,
    group_statistics,
    read_scores,
    significance_stars,
)
from skinoct.study.stats_tables import write_statistics

__all__ = [
    "AnalysisOptions",
    "GroupStatistics",
    "Manifest",
    "ManifestError",
    "StudyResult",
    "WorkerPlan",
    "analyze_volume",
    "check_group_sizes",
    "cohens_d",
    "collect_results",
    "compare_with_truth",
    "dunn_test",
    "group_mean_profiles",
    "group_statistics",
    "model_fingerprint",
    "plan_workers",
    "read_manifest",
    "read_scores",
    "render_report",
    "run_demo",
    "run_study",
    "significance_stars",
    "write_report",
    "write_statistics",
]
