"""``skinoct demo``: a phantom cohort from rendering to report, checked against its truth.

Renders a cohort of phantom volumes in the three groups of seed 002 (young, old, old
photo-exposed; :func:`skinoct.phantom.render_cohort`), runs the whole study with the
bundled models (:func:`skinoct.study.run_study`), writes the report and compares
what was measured with what the phantom was built with: the order of the group
means, the Tukey HSD decisions for every pair, and the correlation of each subject's
measured score with its true mean quality.

The phantom is synthetic: the demo shows that the software recovers what was put
into the images, not how it performs on real skin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinoct.errors import InputError
from skinoct.io import write_json

__all__ = ["DEMO_VOLUME_UM", "PHANTOM_NOTE", "DemoResult", "compare_with_truth", "run_demo"]

#: Default demo volume (z, y, x) in µm at 1 µm: deep enough for the 70 µm profile
#: below a DEJ at 50–110 µm (face phantom), wide enough for 400 µm tiles.
DEMO_VOLUME_UM = (185.0, 410.0, 410.0)
#: Gel above the skin in the demo volumes (µm); the phantom default is 60.
DEMO_SURFACE_UM = 5.0
PHANTOM_NOTE = (
    "Phantom data: every volume in this study was rendered by skinoct's simulator and "
    "analysed with models trained on phantoms only. The results show that the software "
    "recovers what was put into the images; they are not clinical performance."
)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    out_dir, manifest, study_dir, report : Path
    comparison : dict
        :func:`compare_with_truth` output.
    n_failed : int
        Subjects whose analysis failed.
    """

    out_dir: Path
    manifest: Path
    study_dir: Path
    report: Path
    comparison: dict[str, Any]
    n_failed: int


def compare_with_truth(scores, truth, *, alpha: float = 0.05) -> dict[str, Any]:
    """Compare measured subject scores with the phantom's true mean qualities.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``subject``, ``group``, ``score`` (measured).
    truth : pandas.DataFrame
        ``subject``, ``group``, ``mean_q`` (the phantom's ``ground_truth.csv``).
    alpha : float

    Returns
    -------
    dict
        ``measured`` / ``true`` group means, ``order_measured`` / ``order_true``
        (groups by decreasing mean), ``order_matches`` (the whole order),
        ``tukey`` (per pair: true and measured mean difference, ``p_adj`` and
        ``reject``), ``decisions_match`` (every pair's reject decision agrees),
        ``significant_order_matches`` (every pair the truth finds different is
        measured with the same sign — the order that the truth supports; groups
        whose true means do not differ significantly may come in either order),
        ``spearman_rho`` and ``pearson_r`` (subjects), ``n``.
    """
    import scipy.stats

    from skinoct.study.stats import group_statistics

    merged = scores[["subject", "group", "score"]].merge(
        truth[["subject", "mean_q"]], on="subject", how="inner"
    )
    order = list(dict.fromkeys(truth["group"].astype(str)))
    order = [g for g in order if g in set(merged["group"])]
    measured = group_statistics(merged[["subject", "group", "score"]], alpha=alpha, order=order)
    true = group_statistics(
        merged[["subject", "group", "mean_q"]].rename(columns={"mean_q": "score"}),
        alpha=alpha,
        order=order,
    )
    by_mean = lambda s: sorted(s.groups, key=lambda g: -s.groups[g]["mean"])  # noqa: E731
    pairs = []
    for t in true.tukey:
        m = measured.pair(t["group1"], t["group2"])
        pairs.append(
            {
                "group1": t["group1"],
                "group2": t["group2"],
                "true_meandiff": t["meandiff"],
                "measured_meandiff": m["meandiff"],
                "true_p_adj": t["p_adj"],
                "true_reject": t["reject"],
                "measured_p_adj": m["p_adj"],
                "measured_reject": m["reject"],
            }
        )
    rho = scipy.stats.spearmanr(merged["score"], merged["mean_q"]).statistic
    r = scipy.stats.pearsonr(merged["score"], merged["mean_q"]).statistic
    return {
        "n": len(merged),
        "measured": {g: v["mean"] for g, v in measured.groups.items()},
        "true": {g: v["mean"] for g, v in true.groups.items()},
        "order_measured": by_mean(measured),
        "order_true": by_mean(true),
        "order_matches": by_mean(measured) == by_mean(true),
        "anova_p_measured": measured.anova["p"],
        "anova_p_true": true.anova["p"],
        "tukey": pairs,
        "decisions_match": all(p["true_reject"] == p["measured_reject"] for p in pairs),
        "significant_order_matches": all(
            (p["true_meandiff"] > 0) == (p["measured_meandiff"] > 0)
            for p in pairs
            if p["true_reject"]
        ),
        "spearman_rho": float(rho),
        "pearson_r": float(r),
        "alpha": alpha,
    }


def run_demo(
    out_dir: str | Path = "skinoct-demo",
    *,
    subjects_per_group: int = 4,
    volume_size_um: tuple[float, float, float] = DEMO_VOLUME_UM,
    seed: int = 0,
    workers: int | str | None = "auto",
    section_step: int = 8,
    progress: Callable[..., Iterable] | None = None,
    on_result: Callable[[str, dict], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Render a phantom cohort, run the study, write the report, compare with the truth.

    Parameters
    ----------
    out_dir : str or Path
        ``DIR/cohort`` (volumes, manifest, ground truth), ``DIR/study`` (results,
        tables, ``report.html``).
    subjects_per_group : int
        Subjects in each of the three groups.
    volume_size_um : (float, float, float)
        Phantom volume size ``(z, y, x)`` in µm (1 µm pixels).
    seed : int
        Cohort seed (the same seed gives the same volumes).
    workers : 'auto', int or None
        Worker processes for the analysis (see :func:`run_study`; default ``'auto'``).
    section_step : int
        Segment every k-th vertical section (8: the demo's speed setting).
    progress : callable, optional
        ``progress(iterable, description=..., total=...)`` for the rendering and the
        analysis.
    on_result : callable, optional
        Called after each analysed subject (see :func:`run_study`).
    on_stage : callable, optional
        Called with a short text when a stage starts.

    Returns
    -------
    DemoResult

    Notes
    -----
    Re-running with the same arguments reuses the rendered cohort (checked against
    ``DIR/cohort/demo.json``) and the finished subjects.
    """
    import pandas as pd

    from skinoct.phantom import VolumeParams, render_cohort
    from skinoct.study.report import write_report
    from skinoct.study.run import run_study

    if isinstance(subjects_per_group, bool) or int(subjects_per_group) < 2:
        raise InputError(f"subjects_per_group must be ≥ 2 (group SDs), got {subjects_per_group}")
    out = Path(out_dir)
    cohort, study_dir = out / "cohort", out / "study"
    params = VolumeParams(size_um=tuple(volume_size_um), surface_depth_um=DEMO_SURFACE_UM)
    recipe = {
        "subjects_per_group": int(subjects_per_group),
        "volume_size_um": list(params.size_um),
        "surface_depth_um": DEMO_SURFACE_UM,
        "seed": int(seed),
    }
    manifest = cohort / "manifest.csv"
    stamp = cohort / "demo.json"
    if not (manifest.is_file() and stamp.is_file() and _load(stamp) == recipe):
        if on_stage:
            on_stage(
                f"rendering {3 * int(subjects_per_group)} phantom volumes "
                f"{' × '.join(f'{s:g}' for s in params.size_um)} µm"
            )
        stamp.unlink(missing_ok=True)
        render_cohort(
            cohort,
            subjects_per_group=int(subjects_per_group),
            volume_params=params,
            seed=int(seed),
            progress=progress,
        )
        write_json(stamp, recipe)
    if on_stage:
        on_stage("analysing the volumes with the bundled models")
    result = run_study(
        manifest,
        study_dir,
        options={"layers_model": None, "matrix_model": None, "section_step": int(section_step)},
        workers=workers,
        progress=progress,
        on_result=on_result,
    )
    truth = pd.read_csv(cohort / "ground_truth.csv", dtype={"subject": str, "group": str})
    comparison = compare_with_truth(result.scores, truth) if len(result.scores) >= 6 else {}
    write_json(study_dir / "ground_truth_comparison.json", comparison)
    if on_stage:
        on_stage("writing the report")
    report = write_report(
        study_dir,
        title="skinoct demo: a phantom cohort (young, old, old photo-exposed)",
        notes=[PHANTOM_NOTE, *_truth_notes(comparison)],
    )
    return DemoResult(
        out_dir=out,
        manifest=manifest,
        study_dir=study_dir,
        report=report,
        comparison=comparison,
        n_failed=result.n_failed,
    )


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _truth_notes(c: dict) -> list[str]:
    if not c:
        return ["Too few subjects were analysed to compare with the phantom's ground truth."]
    agree = sum(p["true_reject"] == p["measured_reject"] for p in c["tukey"])
    return [
        "Phantom ground truth: group order by true mean quality "
        f"{' > '.join(c['order_true'])}; measured {' > '.join(c['order_measured'])} "
        f"({'same order' if c['order_matches'] else 'a different order'}; the order of the "
        "groups whose true means differ significantly is "
        f"{'recovered' if c['significant_order_matches'] else 'NOT recovered'}). Tukey decisions "
        f"(α = {c['alpha']}) agree for {agree} of {len(c['tukey'])} pairs. Subjects' measured "
        f"score vs true mean quality: Spearman ρ = {c['spearman_rho']:.2f}, "
        f"Pearson r = {c['pearson_r']:.2f} (n = {c['n']})."
    ]
