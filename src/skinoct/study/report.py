"""A study's ``report.html``: one self-contained page (figures embedded as base64).

Sections: notes (e.g. "phantom data"), cohort, group statistics with Figures 3A/3B,
per-subject profiles, layer metrics, segmentation overlays with uncertainty, flagged
volumes (failed, or flagged by the analysis, e.g. an uncertain DEJ), the input files
with their SHA-256, and the software and model versions; a provenance banner on top
whenever a phantom-trained model produced the results. The page is rendered from a
Jinja2 template (``templates/report.html.j2``, autoescaped) and needs no network and no
JavaScript.
"""

from __future__ import annotations

import base64
import importlib.metadata as md
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup

from skinoct._version import __version__
from skinoct.errors import InputError
from skinoct.io import provenance_banner, read_csv_table, write_json, write_text
from skinoct.study._browser import find_chromium, screenshot_html

__all__ = ["find_chromium", "input_files", "render_report", "screenshot_html", "write_report"]

_PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "pingouin", "scikit-posthocs", "torch",
             "monai", "onnxruntime", "tifffile", "matplotlib")  # fmt: skip


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def _p(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def _environment():
    """The Jinja2 environment of the report template (autoescaping on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("skinoct.study", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    env.filters["pval"] = _p
    return env


def _figure(data: bytes, *, alt: str, ident: str = "", caption: str = "") -> dict[str, Any]:
    return {"b64": base64.b64encode(data).decode("ascii"), "alt": alt, "ident": ident,
            "caption": caption}  # fmt: skip


def _thumbnail(path: Path, *, max_width: int = 520) -> bytes:
    """PNG bytes of an image file, scaled down to ``max_width`` px (keeps the page small)."""
    import io

    from PIL import Image

    with Image.open(path) as im:
        if im.width <= max_width:
            return path.read_bytes()
        height = max(1, round(im.height * max_width / im.width))
        small = im.convert("RGB").resize((max_width, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _fig_png(fig, *, dpi: int = 100) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _versions(records: list[dict]) -> tuple[dict[str, str], list[dict]]:
    software = {"skinoct": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            software[name] = md.version(name)
        except md.PackageNotFoundError:
            software[name] = "not installed"
    models: dict[str, dict] = {}
    for rec in records:
        for key, value in (rec.get("models") or {}).items():
            models.setdefault(
                json.dumps(value, sort_keys=True, default=str), {"role": key, "info": value}
            )
        result = rec.get("result") or {}
        for key, value in (result.get("versions") or {}).items():
            if isinstance(value, dict):
                models.setdefault(
                    json.dumps(value, sort_keys=True, default=str), {"role": key, "info": value}
                )
    return software, list(models.values())


def _mean_sd(values) -> str:
    if len(values) > 1:
        return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
    return f"{values.iloc[0]:.2f}" if len(values) == 1 else "–"


def render_report(
    *,
    scores,
    profiles,
    records: list[dict],
    manifest_subjects: list[tuple[str, str]],
    stats=None,
    stats_error: str | None = None,
    title: str = "skinoct study report",
    notes: list[str] | None = None,
    study: dict | None = None,
    study_dir: Path | None = None,
    max_overlays: int = 12,
    inputs: list[dict] | None = None,
) -> tuple[str, dict[str, bytes]]:
    """Build the report's HTML and its figures (PNG bytes) from study data.

    The page is rendered from the Jinja2 template ``study/templates/report.html.j2``
    with autoescaping: no value of the study (a group or subject name, an error
    message) can inject markup.

    Parameters
    ----------
    scores, profiles : pandas.DataFrame
        As written by :func:`skinoct.study.run_study`.
    records : list of dict
        The subjects' records (``DIR/subjects/<subject>.json``).
    manifest_subjects : list of (subject, group)
        Every subject of the study, in manifest order.
    stats : GroupStatistics, optional
    stats_error : str, optional
        Why statistics could not be computed (shown instead of them).
    title : str
    notes : list of str, optional
        Shown in a highlighted box at the top (e.g. that the data are a phantom).
    study : dict, optional
        ``study.json`` (options, function, timing).
    study_dir : Path, optional
        Where the subjects' images are found (``DIR/subjects/<subject>/…``).
    max_overlays : int
        At most this many subjects' segmentation overlays are embedded (flagged
        subjects first).
    inputs : list of dict, optional
        ``subject``, ``group``, ``file``, ``sha256``, ``hashed`` of each input file
        (:func:`input_files`), plus the manifest as ``subject = None``.

    Returns
    -------
    html : str
    figures : dict of str to bytes
        The main figures as PNG (``figure_3a_profiles``, ``figure_3b_group_means``,
        ``subject_profiles``), for saving beside the report.
    """
    from skinoct.study.figures import (
        group_bar_figure,
        profile_strip_figure,
        subject_profiles_figure,
    )

    figures: dict[str, bytes] = {}
    by_subject = {r.get("subject"): r for r in records}
    order = stats.order if stats is not None else None
    ctx: dict[str, Any] = {
        "title": title, "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M"), "notes": list(notes or []),
        "provenance": provenance_banner(records), "stats": stats, "stats_error": stats_error,
    }  # fmt: skip
    ctx.update(_cohort_context(scores, manifest_subjects, by_subject))
    if stats is not None:
        ctx.update(_pairs_context(stats))
    if len(profiles):
        figures["figure_3a_profiles"] = _fig_png(profile_strip_figure(profiles, order=order))
        figures["subject_profiles"] = _fig_png(
            subject_profiles_figure(profiles, order=order), dpi=90
        )
    if stats is not None:
        figures["figure_3b_group_means"] = _fig_png(group_bar_figure(scores, stats))
    ctx["main_figures"] = _main_figures(figures)
    ctx["subject_profiles"] = (
        _figure(figures["subject_profiles"], alt="per-subject depth profiles",
                ident="subject-profiles") if "subject_profiles" in figures else None
    )  # fmt: skip
    ctx.update(_metrics_context(scores, order or ctx["groups_all"], by_subject))
    ctx["flagged_rows"] = _flagged_rows(manifest_subjects, by_subject)
    ctx.update(_gallery_context(records, study_dir, max_overlays))
    ctx.update(_inputs_context(inputs or []))
    software, models = _versions(records)
    ctx["software_rows"] = list(software.items())
    ctx["model_rows"] = [
        [m["role"], Markup("<code>{}</code>").format(json.dumps(m["info"], default=str))]
        for m in models
    ]
    keep = {k: (study or {}).get(k) for k in ("function", "options", "manifest", "finished")
            if k in (study or {})}  # fmt: skip
    ctx["run_info"] = json.dumps(keep, default=str) if keep else ""
    return _environment().get_template("report.html.j2").render(**ctx), figures


def _cohort_context(scores, manifest_subjects, by_subject) -> dict[str, Any]:
    groups_all = list(dict.fromkeys(g for _, g in manifest_subjects))
    failed = [(s, g) for s, g in manifest_subjects if by_subject.get(s, {}).get("status") != "ok"]
    rows = []
    for g in groups_all:
        n_all = sum(1 for _, gg in manifest_subjects if gg == g)
        sub = scores[scores["group"].astype(str) == g] if len(scores) else scores
        n_fail = sum(1 for _, gg in failed if gg == g)
        vals = sub["score"].dropna() if len(sub) else []
        rows.append([g, str(n_all), str(len(sub)), str(n_fail), _mean_sd(vals)])
    return {"groups_all": groups_all, "cohort_rows": rows}


def _pairs_context(stats) -> dict[str, Any]:
    from skinoct.study.stats import SMALL_N

    rows, unreliable = [], False
    for t in stats.tukey:
        d = stats.pair(t["group1"], t["group2"], test="dunn")
        c = stats.pair(t["group1"], t["group2"], test="cohen_d")
        ci = f"[{_num(c.get('d_lower'), 2)}, {_num(c.get('d_upper'), 2)}]"
        if c.get("reliable", True):
            effect = f"{_num(c['d'], 2)} {ci}"
        else:  # the point value of d at n < SMALL_N is not shown as if it were a measurement
            unreliable = True
            effect = f"not reliable (n < {SMALL_N}); CI {ci}"
        rows.append([
            f"{t['group1']} vs {t['group2']}", _num(t["meandiff"]),
            f"[{_num(t['lower'])}, {_num(t['upper'])}]", _p(t["p_adj"]), t["stars"],
            _p(d["p_adj"]), d["stars"], effect,
        ])  # fmt: skip
    return {"pair_rows": rows, "unreliable_d": unreliable, "small_n": SMALL_N,
            "ci_level": f"{round(100 * (1 - stats.alpha))}%",
            "xlsx": _has_openpyxl()}  # fmt: skip


def _has_openpyxl() -> bool:
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


def _main_figures(figures: dict[str, bytes]) -> list[dict[str, Any]]:
    out = []
    if "figure_3a_profiles" in figures:
        out.append(_figure(
            figures["figure_3a_profiles"], alt="Figure 3A: mean dermal quality profile per group",
            ident="figure-3a",
            caption=Markup("<b>A</b> Mean profile of the dermal matrix per group; each row is one "
                           "µm below the DEJ, coloured red (score 1) to green (score 4)."),
        ))  # fmt: skip
    if "figure_3b_group_means" in figures:
        out.append(_figure(
            figures["figure_3b_group_means"], alt="Figure 3B: group means with SD and Tukey stars",
            ident="figure-3b",
            caption=Markup("<b>B</b> Mean score over all depths per group (mean ± SD, dots = "
                           "subjects), Tukey HSD after one-way ANOVA."),
        ))  # fmt: skip
    return out


def _metrics_context(scores, groups: list[str], by_subject) -> dict[str, Any]:
    metric_cols = [
        c for c in scores.columns if c not in ("subject", "group", "site", "visit", "score")
    ]
    numeric = [c for c in metric_cols if scores[c].dtype.kind in "fiu"]
    metric_rows = []
    if numeric and len(scores):
        for c in numeric:
            row = [c]
            for g in groups:
                v = scores.loc[scores["group"].astype(str) == g, c].dropna()
                row.append(_mean_sd(v) if len(v) > 1 else _num(v.mean() if len(v) else None, 2))
            metric_rows.append(row)
    subject_rows = []
    for rec in scores.to_dict("records"):
        flags = (by_subject.get(rec["subject"], {}).get("result") or {}).get("flags") or []
        cells = [_num(rec[c], 2) for c in metric_cols]
        subject_rows.append([rec["subject"], rec["group"], _num(rec["score"]), *cells,
                             "; ".join(flags)])  # fmt: skip
    return {"metric_rows": metric_rows, "metric_groups": groups, "metric_columns": metric_cols,
            "subject_rows": subject_rows}  # fmt: skip


def _flagged_rows(manifest_subjects, by_subject) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for s, g in manifest_subjects:
        rec = by_subject.get(s)
        if rec is None:
            rows.append([s, g, "not analysed", "the run did not reach this subject"])
        elif rec.get("status") != "ok":
            rows.append([s, g, Markup("<b>failed</b>"), rec.get("error") or ""])
        else:
            for flag in (rec.get("result") or {}).get("flags") or []:
                rows.append([s, g, "review", flag])
    return rows


def _gallery_context(records, study_dir, max_overlays: int) -> dict[str, Any]:
    gallery = []
    flagged_first = sorted(
        (r for r in records if r.get("status") == "ok"),
        key=lambda r: (not (r.get("result") or {}).get("flags"), str(r.get("subject"))),
    )
    shown = 0
    for rec in flagged_first:
        images = (rec.get("result") or {}).get("images") or {}
        if not images or study_dir is None or shown >= max_overlays:
            continue
        base = study_dir / "subjects" / str(rec["subject"])
        preferred = {k: v for k, v in images.items() if "overlay" in k or "uncertainty" in k}
        for name, rel in (preferred or images).items():
            path = base / rel
            if path.suffix.lower() == ".png" and path.is_file():
                gallery.append(_figure(
                    _thumbnail(path), alt=f"{rec['subject']} {name}",
                    caption=f"{rec['subject']} ({rec['group']}): {name}",
                ))  # fmt: skip
        shown += 1
    n_with = sum(1 for r in records if (r.get("result") or {}).get("images"))
    return {"gallery": gallery, "more_overlays": max(0, n_with - shown) if gallery else 0}


def _inputs_context(inputs: list[dict]) -> dict[str, Any]:
    manifest = next((i for i in inputs if i.get("subject") is None), None)
    rows = [[i["subject"], i["group"], i["file"], i["sha256"] or "–", i["hashed"]]
            for i in inputs if i.get("subject") is not None]  # fmt: skip
    if manifest is not None:
        manifest = {"path": manifest["file"], "sha256": manifest["sha256"] or "–"}
    return {"input_rows": rows, "manifest": manifest}


def write_report(
    study_dir: str | Path,
    *,
    alpha: float = 0.05,
    title: str = "skinoct study report",
    notes: list[str] | None = None,
    order: list[str] | None = None,
    max_overlays: int = 12,
) -> Path:
    """Write ``DIR/report.html``, ``DIR/stats.json`` with its tables, ``DIR/figures/*.png``.

    Parameters
    ----------
    study_dir : str or Path
        A folder written by :func:`skinoct.study.run_study`.
    alpha : float
        Significance level of the statistics.
    title : str
    notes : list of str, optional
        Highlighted at the top of the page.
    order : list of str, optional
        Group order (default: as in the manifest).
    max_overlays : int
        Subjects whose overlays are embedded.

    Returns
    -------
    Path
        The report.

    Raises
    ------
    InputError
        ``study_dir`` holds no ``scores.csv`` / ``study.json``.

    Notes
    -----
    The tables are read with every cell as text (a group named ``NA`` is a group).
    When the statistics cannot be computed, ``stats.json`` holds ``{"error": …}``
    (with a "did you mean" for a group name close to another one) and the tables of
    an earlier run are removed.
    """
    from skinoct.study.stats import group_statistics
    from skinoct.study.stats_tables import STATS_TABLES, write_statistics

    study_dir = Path(study_dir)
    for name in ("scores.csv", "profiles.csv", "study.json"):
        if not (study_dir / name).is_file():
            raise InputError(f"not a study folder: no {name} (run `skinoct study run` first)",
                             path=study_dir)  # fmt: skip
    study = json.loads((study_dir / "study.json").read_text(encoding="utf-8"))
    scores = read_csv_table(study_dir / "scores.csv", numeric=None)
    profiles = read_csv_table(study_dir / "profiles.csv", numeric=("depth_um", "score"))
    if "score" in scores.columns and scores["score"].dtype == object:  # all cells empty
        scores["score"] = scores["score"].map(lambda v: math.nan).astype(float)
    manifest_subjects = _manifest_subjects(study, study_dir)
    records = []
    for subject, _ in manifest_subjects:
        path = study_dir / "subjects" / f"{subject}.json"
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
    groups = list(dict.fromkeys(g for _, g in manifest_subjects))
    stats, stats_error = None, None
    try:
        present = set(scores["group"].astype(str))
        stats = group_statistics(scores, alpha=alpha,
                                 order=order or [g for g in groups if g in present])  # fmt: skip
    except InputError as exc:  # e.g. a group too small, with a "did you mean"
        stats_error = str(exc)
    page, figures = render_report(
        scores=scores, profiles=profiles, records=records, manifest_subjects=manifest_subjects,
        stats=stats, stats_error=stats_error, title=title, notes=notes, study=study,
        study_dir=study_dir, max_overlays=max_overlays,
        inputs=input_files(study, records, manifest_subjects),
    )  # fmt: skip
    from skinoct.io import atomic_path

    for name, data in figures.items():
        with atomic_path(study_dir / "figures" / f"{name}.png") as tmp:
            tmp.write_bytes(data)
    if stats is not None:
        write_statistics(study_dir, stats)
    else:
        write_json(study_dir / "stats.json", {"error": stats_error})
        for name in STATS_TABLES:  # never leave an earlier run's tables beside the error
            (study_dir / name).unlink(missing_ok=True)
    return write_text(study_dir / "report.html", page)


def input_files(study: dict, records: list[dict], manifest_subjects) -> list[dict[str, Any]]:
    """The study's input files with their SHA-256, for the report's provenance table.

    The hash recorded by the analysis (``result.input.sha256``) when there is one,
    else the file's hash now (``hashed`` says which); the manifest comes first with
    ``subject = None``.
    """
    by_subject = {r.get("subject"): r for r in records}
    out = []
    manifest = study.get("manifest")
    if manifest:
        out.append({"subject": None, "group": None, "file": str(manifest),
                    **_hash_now(Path(manifest))})  # fmt: skip
    for subject, group in manifest_subjects:
        rec = by_subject.get(subject) or {}
        volume = rec.get("volume")
        recorded = ((rec.get("result") or {}).get("input") or {}).get("sha256")
        if recorded:
            entry = {"sha256": recorded, "hashed": "at analysis"}
        elif volume:
            entry = _hash_now(Path(volume))
        else:
            entry = {"sha256": None, "hashed": "no record"}
        out.append({"subject": subject, "group": group, "file": volume or "–", **entry})
    return out


def _hash_now(path: Path) -> dict[str, Any]:
    from skinoct.models import sha256_file  # the project's one file-hash helper

    if not path.is_file():
        return {"sha256": None, "hashed": "file not found now"}
    return {"sha256": sha256_file(path), "hashed": "when the report was written"}


def _manifest_subjects(study: dict, study_dir: Path) -> list[tuple[str, str]]:
    """(subject, group) of every subject in the study, in manifest order."""
    if study.get("subjects"):
        return [(str(s), str(g)) for s, g in study["subjects"]]
    subjects = []  # an older study.json: the stored records are all there is
    for path in sorted((study_dir / "subjects").glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        subjects.append((str(rec.get("subject")), str(rec.get("group"))))
    return subjects
