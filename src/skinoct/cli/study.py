"""``skinoct study run|stats``, ``skinoct analyze`` and ``skinoct demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from skinoct.cli._axes import axes_option
from skinoct.cli._common import console, err_console, prefer_passive_openmp

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
    from skinoct.errors import InputError
    from skinoct.io import read_csv_table
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
        from skinoct.study.figures import group_bar_figure, profile_strip_figure, save_figure
        from skinoct.study.stats_tables import write_statistics

        out.mkdir(parents=True, exist_ok=True)
        write_statistics(out, result)  # stats.json + the tables, as the report writes them
        save_figure(group_bar_figure(table, result), out / "figure_3b_group_means.png")
        if profiles is not None:
            if not profiles.is_file():
                raise InputError("file not found", path=profiles)
            prof = read_csv_table(profiles, numeric=("depth_um", "score"))
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
        err_console.print(f"wrote {out}", highlight=False, markup=False)
    return 0


def _jsonable(obj):
    from skinoct.io import json_safe

    return json_safe(obj)


def _print_stats(result) -> None:
    from rich.table import Table

    table = Table(title="Groups", show_edge=False)
    for col in ("group", "n", "mean", "SD", "median"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result.groups.items():
        table.add_row(escape(str(name)), str(g["n"]), f"{g['mean']:.3f}", f"{g['sd']:.3f}",
                      f"{g['median']:.3f}")  # fmt: skip
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
    for col in (
        "pair",
        "mean diff",
        "Tukey p_adj",
        "",
        f"Dunn p_adj ({result.dunn_adjust})",
        " ",
        "Cohen's d",
    ):
        pairs.add_column(col, justify="left" if col == "pair" else "right")
    for t in result.tukey:
        d = result.pair(t["group1"], t["group2"], test="dunn")
        c = result.pair(t["group1"], t["group2"], test="cohen_d")
        pairs.add_row(
            escape(f"{t['group1']} vs {t['group2']}"),
            f"{t['meandiff']:+.3f}",
            _fmt_p(t["p_adj"]),
            t["stars"],
            _fmt_p(d["p_adj"]),
            d["stars"],
            f"{c['d']:+.2f}" if c.get("reliable", True) else "n/a (n < 5)",
        )
    console.print(pairs)
    for warning in result.warnings:  # small groups: d is not shown as if it were reliable
        err_console.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
    if result.excluded:
        console.print(
            f"left out (no score): {', '.join(result.excluded)}",
            style="yellow", highlight=False, markup=False,
        )  # fmt: skip


def _parse_options(items: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs; values that parse as JSON (numbers, true, null…) are typed."""
    from skinoct.errors import InputError

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--option must be KEY=VALUE with a Python name as KEY, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


@study_app.command("run")
def run(
    manifest: Path = typer.Argument(..., help="CSV: subject, group, volume[, dej, site, visit]."),
    out: Path = typer.Option(..., "--out", help="Study folder (results, tables, report)."),
    workers: str = typer.Option(
        "auto",
        "--workers",
        help="Local worker processes: auto (split the CPUs between processes and threads "
        "by a measured rule, bounded by memory; recorded in study.json), a number "
        "(CPUs shared between them) or 0 (this process).",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Run on an existing Dask cluster, e.g. tcp://host:8786."
    ),
    layers_model: Path | None = typer.Option(
        None, "--layers-model", help="Layer segmentation model folder (default: bundled)."
    ),
    matrix_model: Path | None = typer.Option(
        None, "--matrix-model", help="Dermal matrix model folder (default: bundled)."
    ),
    section_step: int = typer.Option(
        1, "--section-step", help="Segment every k-th vertical section, interpolate between."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (the fastest installed for this CPU; the engine used is recorded in "
        "each analysis.json), torch, onnx or openvino.",
    ),
    function: str | None = typer.Option(
        None, "--function", help="Custom per-volume function 'module:name' (default: analyze)."
    ),
    option: list[str] | None = typer.Option(
        None, "--option", help="Extra KEY=VALUE passed to the per-volume function (repeatable)."
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html at the end."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level for the report."),
) -> int:
    """Analyse every volume of a manifest (resumable), then statistics and report.html."""
    prefer_passive_openmp()
    from skinoct.cli._common import EXIT_ALL_FAILED, EXIT_OK, EXIT_SOME_FAILED, STATE
    from skinoct.errors import InputError
    from skinoct.io import provenance_banner
    from skinoct.study import plan_workers
    from skinoct.study.run import ManifestError, read_manifest, run_study
    from skinoct.study.stats import check_group_sizes

    try:
        plan_workers(workers, n_tasks=1)
    except InputError:
        raise InputError(f"--workers must be auto or an integer ≥ 0, got {workers!r}") from None
    if section_step < 1:
        raise InputError(f"--section-step must be ≥ 1, got {section_step}")
    try:
        table = read_manifest(manifest)
    except ManifestError as exc:
        if len(exc.problems) > 1:
            for problem in exc.problems:
                err_console.print(f"  - {problem}", highlight=False, markup=False)
        raise
    if report and (problems := check_group_sizes(t.group for t in table.tasks)):
        raise InputError(  # before hours of analysis, not deep in the report afterwards
            "the groups cannot support the statistics: " + "; ".join(problems)
            + " (--no-report analyses the volumes without group statistics)", path=manifest,
        )  # fmt: skip
    options = _parse_options(option)
    if function is None:
        options = {
            "layers_model": None if layers_model is None else str(layers_model.resolve()),
            "matrix_model": None if matrix_model is None else str(matrix_model.resolve()),
            "section_step": section_step,
            **({"engine": engine} if engine != "auto" else {}),
            **options,
        }
    elif layers_model or matrix_model or section_step != 1 or engine != "auto":
        raise InputError(
            "--layers-model/--matrix-model/--section-step/--engine apply to the default "
            "analysis only; pass options of a custom --function with --option"
        )
    result = _run_with_progress(
        run_study,
        table,
        out,
        function=function,
        options=options,
        workers=workers,
        scheduler=scheduler,
        quiet=STATE.quiet,
    )
    n = len(table.tasks)
    err_console.print(
        f"{n} subject(s): {len(result.computed)} analysed, {len(result.skipped)} reused, "
        f"{result.n_failed} failed; tables in {out}",
        highlight=False,
        markup=False,
    )
    for f in result.failures:
        err_console.print(f"  failed: {f['subject']}: {f['error']}", highlight=False, markup=False)
    if report:
        from skinoct.study.report import write_report

        path = write_report(out, alpha=alpha)
        err_console.print(f"report: {path}", highlight=False, markup=False)
    if banner := provenance_banner(out):
        err_console.print(f"note: {banner}", style="yellow", highlight=False, markup=False)
    if result.n_failed == 0:
        return EXIT_OK
    return EXIT_ALL_FAILED if result.n_failed == n else EXIT_SOME_FAILED


def _run_with_progress(run_study, manifest, out, *, quiet: bool, **kwargs):
    """A progress bar on a terminal; one line per subject otherwise (logs, CI)."""
    from skinoct.cli._common import progress

    if quiet:
        return run_study(manifest, out, **kwargs)
    if err_console.is_terminal:
        return run_study(manifest, out, progress=progress, **kwargs)
    total = len(manifest.tasks)
    done = [0]

    def line(subject: str, record: dict) -> None:
        done[0] += 1
        status = record.get("status")
        extra = f" ({record['error']})" if status != "ok" else ""
        dur = record.get("duration_s")
        err_console.print(
            f"[{done[0]}] {subject}: {status}{'' if dur is None else f' in {dur:.1f} s'}{extra}",
            highlight=False,
            markup=False,
        )

    err_console.print(f"analysing up to {total} subject(s)…", highlight=False)
    return run_study(manifest, out, on_result=line, **kwargs)


def _parse_dej(text: str | None):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return Path(text)


def analyze(
    volume: Path = typer.Argument(..., help="A z×y×x volume (OME-TIFF, TIFF, .npy, slice folder)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    layers_model: Path | None = typer.Option(
        None, "--layers-model", help="Layer segmentation model folder (default: bundled)."
    ),
    matrix_model: Path | None = typer.Option(
        None, "--matrix-model", help="Dermal matrix model folder (default: bundled)."
    ),
    dej: str | None = typer.Option(
        None, "--dej", help="Use this DEJ for the dermal tiles: a depth in µm or a (y, x) map file."
    ),
    section_step: int = typer.Option(
        1, "--section-step", help="Segment every k-th vertical section, interpolate between."
    ),
    depth_stop: float = typer.Option(70.0, "--depth-stop", help="Profile depth below the DEJ, µm."),
    tile_size: float = typer.Option(
        400.0, "--tile-size", help="Side of the dermal tiles in µm (seed 002: 400)."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (the fastest installed for this CPU; the engine used is recorded in "
        "analysis.json), torch, onnx or openvino.",
    ),
    spacing: str | None = typer.Option(
        None, "--spacing", help="Override the spacing in µm (dz dy dx, or one value)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the analysis as one JSON object."),
    axes: str | None = axes_option(3),
) -> int:
    """Analyse one volume: layers, 3-D morphometry, dermal quality profile (seed 002 §2.3)."""
    prefer_passive_openmp()
    from skinoct.cli._axes import read_volume_checked
    from skinoct.cli._common import parse_spacing
    from skinoct.io import provenance_banner
    from skinoct.study.analyze import analyze_volume

    # Read (and orientation-check unless --axes is given) before any model loads.
    image = read_volume_checked(volume, spacing_um=parse_spacing(spacing, ndim=3), axes=axes)
    result = analyze_volume(
        image,
        out_dir=out,
        dej=_parse_dej(dej),
        layers_model=layers_model,
        matrix_model=matrix_model,
        section_step=section_step,
        depth_stop_um=depth_stop,
        tile_size_um=tile_size,
        engine=engine,
    )
    if as_json:
        typer.echo(json.dumps(_jsonable({k: v for k, v in result.items() if k != "profile"})))
        return 0
    m = result["metrics"]
    console.print(
        f"mean dermal quality score {result['score']:.2f} over "
        f"{sum(1 for n in result['profile']['n_tiles'] if n)} depths "
        f"(from {result['profile_start_um']:g} µm below the DEJ); epidermis "
        f"{m['epidermis_thickness_um_mean']:.1f} µm, "
        f"SC {m['stratum_corneum_thickness_um_mean']:.1f} µm, "
        f"DEJ undulation {m['dej_undulation_index']:.3f}",
        highlight=False,
    )
    for flag in result["flags"]:
        err_console.print(f"flag: {flag}", style="yellow", highlight=False, markup=False)
    if banner := provenance_banner(result):
        err_console.print(f"note: {banner}", style="yellow", highlight=False, markup=False)
    err_console.print(f"wrote {out}", highlight=False, markup=False)
    return 0


def demo(
    out: Path = typer.Option(Path("skinoct-demo"), "--out", help="Output folder."),
    subjects_per_group: int = typer.Option(
        4, "--subjects-per-group", help="Phantom subjects in each of the three groups."
    ),
    workers: str = typer.Option(
        "auto", "--workers", help="Worker processes: auto, a number, or 0 (this process)."
    ),
    seed: int = typer.Option(0, "--seed", help="Cohort seed."),
) -> int:
    """Phantom cohort → full study with the bundled models → report.html (a few minutes)."""
    prefer_passive_openmp()
    import time

    from skinoct.cli._common import STATE, progress
    from skinoct.study.demo import run_demo

    start = time.perf_counter()
    quiet = STATE.quiet
    tty = err_console.is_terminal

    def stage(text: str) -> None:
        if not quiet:
            err_console.print(f"[{time.perf_counter() - start:5.0f} s] {text}", highlight=False)

    def lines(items, *, description: str, total: int | None = None):
        # Without a terminal (logs, CI): one line per finished item.
        for k, item in enumerate(items, 1):
            yield item
            stage(f"{description}: {k}/{total}")

    result = run_demo(
        out,
        subjects_per_group=subjects_per_group,
        seed=seed,
        workers=workers,
        progress=None if quiet else (progress if tty else lines),
        on_stage=stage,
    )
    c = result.comparison
    if c:
        console.print("group means (measured score vs phantom truth):", highlight=False)
        for g in c["order_true"]:
            console.print(
                f"  {g:<18} {c['measured'][g]:.2f}   true {c['true'][g]:.2f}", highlight=False
            )
        agree = sum(p["true_reject"] == p["measured_reject"] for p in c["tukey"])
        console.print(
            f"order {'matches' if c['order_matches'] else 'differs from'} the truth "
            f"({'recovered' if c['significant_order_matches'] else 'NOT recovered'} for the "
            f"significantly different groups); Tukey decisions agree for {agree}/"
            f"{len(c['tukey'])} pairs; "
            f"Spearman ρ = {c['spearman_rho']:.2f} (n = {c['n']})",
            highlight=False,
        )
    console.print(f"report: {result.report}", highlight=False, markup=False)
    stage("done (phantom data: this demonstrates the software, not clinical performance)")
    return 0 if result.n_failed == 0 else 1
