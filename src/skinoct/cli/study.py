"""``skinoct study run|stats``, ``skinoct analyze`` and ``skinoct demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from skinoct.cli._common import console, err_console

study_app = typer.Typer(
    name="study",
    help="Clinical-study pipeline: run a cohort, compare groups, write the report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _order(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def _fmt_p(p) -> str:
    if p is None or p != p:
        return "n/a"
    return f"{p:.2e}" if p < 1e-4 else f"{p:.4f}"


@study_app.command("stats")
def stats(
    scores: Path = typer.Argument(..., help="CSV with columns subject, group, score."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Path | None = typer.Option(
        None, "--out", help="Write stats.json and the figures (3A, 3B) to this folder."
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
    order: str | None = typer.Option(
        None, "--order", help="Group order, comma-separated (default: as in the file)."
    ),
    profiles: Path | None = typer.Option(
        None,
        "--profiles",
        help="Depth profiles (subject, group, depth_um, score) for Figure 3A; default "
        "profiles.csv beside SCORES when it exists.",
    ),
    dunn_adjust: str = typer.Option(
        "holm", "--dunn-adjust", help="Adjustment of Dunn's p-values: holm or bonferroni."
    ),
) -> int:
    """Group statistics: mean ± SD, ANOVA + Tukey HSD, Kruskal–Wallis + Dunn, effect sizes."""
    import pandas as pd

    from skinoct.errors import InputError
    from skinoct.study.stats import group_statistics, read_scores

    if not 0 < alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1, got {alpha}")
    if dunn_adjust not in ("holm", "bonferroni"):
        raise InputError(f"--dunn-adjust must be holm or bonferroni, got {dunn_adjust!r}")
    table = read_scores(scores)
    try:
        result = group_statistics(table, alpha=alpha, order=_order(order), dunn_adjust=dunn_adjust)
    except InputError as exc:
        raise InputError(exc.reason, path=scores) from None
    if profiles is None and (scores.parent / "profiles.csv").is_file() and out is not None:
        profiles = scores.parent / "profiles.csv"
    if out is not None:
        from skinoct.io import write_json
        from skinoct.study.figures import group_bar_figure, profile_strip_figure, save_figure

        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "stats.json", result.to_dict())
        save_figure(group_bar_figure(table, result), out / "figure_3b_group_means.png")
        if profiles is not None:
            if not profiles.is_file():
                raise InputError("file not found", path=profiles)
            prof = pd.read_csv(profiles, dtype={"subject": str, "group": str})
            try:
                fig = profile_strip_figure(prof, order=result.order)
            except (InputError, ValueError) as exc:
                raise InputError(str(exc), path=profiles) from None
            save_figure(fig, out / "figure_3a_profiles.png")
    if as_json:
        typer.echo(json.dumps(_jsonable(result.to_dict())))
        return 0
    _print_stats(result)
    if out is not None:
        err_console.print(f"wrote {out}", highlight=False)
    return 0


def _jsonable(obj):
    from skinoct.io._atomic import _json_safe

    return _json_safe(obj)


def _print_stats(result) -> None:
    from rich.table import Table

    table = Table(title="Groups", show_edge=False)
    for col in ("group", "n", "mean", "SD", "median"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result.groups.items():
        table.add_row(name, str(g["n"]), f"{g['mean']:.3f}", f"{g['sd']:.3f}", f"{g['median']:.3f}")
    console.print(table)
    a, k = result.anova, result.kruskal
    console.print(
        f"One-way ANOVA: F({a['df_between']}, {a['df_within']}) = {a['F']:.3f}, "
        f"p = {_fmt_p(a['p'])}, η² = {a['eta_squared']:.3f}",
        highlight=False,
    )
    console.print(
        f"Kruskal–Wallis: H({k['df']}) = {k['H']:.3f}, p = {_fmt_p(k['p'])}, "
        f"ε² = {k['epsilon_squared']:.3f}",
        highlight=False,
    )
    pairs = Table(title=f"Pairs (alpha = {result.alpha})", show_edge=False)
    for col in ("pair", "mean diff", "Tukey p_adj", "", f"Dunn p_adj ({result.dunn_adjust})",
                " ", "Cohen's d"):  # fmt: skip
        pairs.add_column(col, justify="left" if col == "pair" else "right")
    for t in result.tukey:
        d = result.pair(t["group1"], t["group2"], test="dunn")
        c = result.pair(t["group1"], t["group2"], test="cohen_d")
        pairs.add_row(
            f"{t['group1']} vs {t['group2']}", f"{t['meandiff']:+.3f}", _fmt_p(t["p_adj"]),
            t["stars"], _fmt_p(d["p_adj"]), d["stars"], f"{c['d']:+.2f}",
        )  # fmt: skip
    console.print(pairs)
    if result.excluded:
        console.print(
            f"left out (no score): {', '.join(result.excluded)}", style="yellow", highlight=False
        )
