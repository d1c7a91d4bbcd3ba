"""A study's ``report.html``: one self-contained page (figures embedded as base64).

Sections: notes (e.g. "phantom data"), cohort, group statistics with Figures 3A/3B,
per-subject profiles, layer metrics, segmentation overlays with uncertainty, flagged
volumes (failed, or flagged by the analysis, e.g. an uncertain DEJ), and the software
and model versions. The page needs no network and no JavaScript.
"""

from __future__ import annotations

import base64
import html
import importlib.metadata as md
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

from skinoct._version import __version__
from skinoct.errors import InputError
from skinoct.io import write_json, write_text

__all__ = ["render_report", "write_report"]

_PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "torch", "monai", "onnxruntime",
             "tifffile", "matplotlib")  # fmt: skip

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;
background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid
#ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 16px}
.note{background:#fff4e5;border-left:5px solid #e69f00;padding:10px 14px;margin:12px 0}
.bad{background:#fdecea;border-left:5px solid #d55e00;padding:10px 14px;margin:12px 0}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
.scroll{max-height:420px;overflow:auto;display:inline-block;max-width:100%}
figure{display:inline-block;margin:6px 14px 14px 0;vertical-align:top;background:#fff;
padding:6px;border:1px solid #e4e4e4}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:12px;color:#444;max-width:560px;margin-top:4px}
.gallery figure img{width:360px}
code{background:#eee;padding:1px 4px;border-radius:3px}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


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
        return _esc(value)
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
    return "&lt; 0.0001" if v < 1e-4 else f"{v:.4f}"


def _table(header: list[str], rows: list[list[str]], *, cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="{cls}">{table}</div>' if cls else table


def _img_png(data: bytes, *, alt: str, ident: str = "", caption: str = "") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    id_attr = f' id="{_esc(ident)}"' if ident else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (
        f'<figure><img{id_attr} alt="{_esc(alt)}" src="data:image/png;base64,{b64}">{cap}</figure>'
    )


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
) -> tuple[str, dict[str, bytes]]:
    """Build the report's HTML and its figures (PNG bytes) from study data.

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
    parts: list[str] = []
    by_subject = {r.get("subject"): r for r in records}
    order = stats.order if stats is not None else None

    parts.append(f"<h1>{_esc(title)}</h1>")
    parts.append(
        f'<p class="sub">Generated {time.strftime("%Y-%m-%d %H:%M")} by skinoct '
        f"{_esc(__version__)}. Dermal quality scores: 1 = coarse, fragmented fibres … "
        "4 = web-like reticulated network (seed 002); depth 0 µm = local DEJ.</p>"
    )
    for note in notes or []:
        parts.append(f'<div class="note">{_esc(note)}</div>')

    # ---- cohort
    groups_all = list(dict.fromkeys(g for _, g in manifest_subjects))
    failed = [(s, g) for s, g in manifest_subjects if by_subject.get(s, {}).get("status") != "ok"]
    rows = []
    for g in groups_all:
        n_all = sum(1 for _, gg in manifest_subjects if gg == g)
        sub = scores[scores["group"].astype(str) == g] if len(scores) else scores
        n_fail = sum(1 for _, gg in failed if gg == g)
        vals = sub["score"].dropna() if len(sub) else []
        mean_sd = (f"{vals.mean():.2f} ± {vals.std(ddof=1):.2f}" if len(vals) > 1
                   else (f"{vals.iloc[0]:.2f}" if len(vals) == 1 else "–"))  # fmt: skip
        rows.append([_esc(g), str(n_all), str(len(sub)), str(n_fail), mean_sd])
    parts.append('<h2 id="cohort">Cohort</h2>')
    parts.append(_table(["group", "subjects", "analysed", "failed", "score mean ± SD"], rows))

    # ---- statistics and Figures 3A/3B
    parts.append('<h2 id="statistics">Group comparison</h2>')
    if stats is None:
        parts.append(f'<div class="bad">Statistics not computed: {_esc(stats_error)}</div>')
    else:
        a, k = stats.anova, stats.kruskal
        parts.append(
            f"<p>One-way ANOVA: F({a['df_between']}, {a['df_within']}) = {_num(a['F'])}, "
            f"p = {_p(a['p'])}, η² = {_num(a['eta_squared'])}. Kruskal–Wallis: "
            f"H({k['df']}) = {_num(k['H'])}, p = {_p(k['p'])}, ε² = {_num(k['epsilon_squared'])}. "
            f"Significance level α = {stats.alpha}; * p &lt; 0.05, ** p &lt; 0.01, "
            "*** p &lt; 0.001.</p>"
        )
        prow = []
        for t in stats.tukey:
            d = stats.pair(t["group1"], t["group2"], test="dunn")
            c = stats.pair(t["group1"], t["group2"], test="cohen_d")
            prow.append([
                f"{_esc(t['group1'])} vs {_esc(t['group2'])}", _num(t["meandiff"]),
                f"[{_num(t['lower'])}, {_num(t['upper'])}]", _p(t["p_adj"]), t["stars"],
                _p(d["p_adj"]), d["stars"], _num(c["d"], 2),
            ])  # fmt: skip
        parts.append(_table(
            ["pair", "mean diff", "95% CI", "Tukey p_adj", "", f"Dunn p_adj ({stats.dunn_adjust})",
             "", "Cohen's d"], prow))  # fmt: skip
        if stats.excluded:
            parts.append(f"<p>Left out (no score): {_esc(', '.join(stats.excluded))}</p>")
    if len(profiles):
        figures["figure_3a_profiles"] = _fig_png(profile_strip_figure(profiles, order=order))
    if stats is not None:
        figures["figure_3b_group_means"] = _fig_png(group_bar_figure(scores, stats))
    fig_html = []
    if "figure_3a_profiles" in figures:
        fig_html.append(_img_png(
            figures["figure_3a_profiles"], alt="Figure 3A: mean dermal quality profile per group",
            ident="figure-3a",
            caption="<b>A</b> Mean profile of the dermal matrix per group; each row is one µm "
                    "below the DEJ, coloured red (score 1) to green (score 4).",
        ))  # fmt: skip
    if "figure_3b_group_means" in figures:
        fig_html.append(_img_png(
            figures["figure_3b_group_means"], alt="Figure 3B: group means with SD and Tukey stars",
            ident="figure-3b",
            caption="<b>B</b> Mean score over all depths per group (mean ± SD, dots = "
                    "subjects), Tukey HSD after one-way ANOVA.",
        ))  # fmt: skip
    parts.append("".join(fig_html))

    # ---- per-subject profiles
    parts.append('<h2 id="profiles">Per-subject depth profiles</h2>')
    if len(profiles):
        figures["subject_profiles"] = _fig_png(
            subject_profiles_figure(profiles, order=order), dpi=90
        )
        parts.append(_img_png(figures["subject_profiles"], alt="per-subject depth profiles",
                              ident="subject-profiles"))  # fmt: skip
    else:
        parts.append("<p>No profiles.</p>")

    # ---- layer metrics
    parts.append('<h2 id="metrics">Subjects and layer metrics</h2>')
    metric_cols = [
        c for c in scores.columns if c not in ("subject", "group", "site", "visit", "score")
    ]
    numeric = [c for c in metric_cols if scores[c].dtype.kind in "fiu"]
    if numeric and len(scores):
        grows = []
        for c in numeric:
            row = [_esc(c)]
            for g in order or groups_all:
                v = scores.loc[scores["group"].astype(str) == g, c].dropna()
                row.append(
                    f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"
                    if len(v) > 1
                    else _num(v.mean() if len(v) else None, 2)
                )
            grows.append(row)
        parts.append("<h3>Group means ± SD</h3>")
        parts.append(
            _table(["metric", *[_esc(g) for g in (order or groups_all)]], grows, cls="scroll")
        )
    srows = []
    for rec in scores.to_dict("records"):
        flags = (by_subject.get(rec["subject"], {}).get("result") or {}).get("flags") or []
        srows.append([_esc(rec["subject"]), _esc(rec["group"]), _num(rec["score"]),
                      *[_num(rec[c], 2) for c in metric_cols], _esc("; ".join(flags))])  # fmt: skip
    parts.append("<h3>Per subject</h3>")
    parts.append(_table(["subject", "group", "score", *[_esc(c) for c in metric_cols], "flags"],
                        srows, cls="scroll"))  # fmt: skip

    # ---- flagged volumes
    parts.append('<h2 id="flagged">Flagged volumes</h2>')
    frows = []
    for s, g in manifest_subjects:
        rec = by_subject.get(s)
        if rec is None:
            frows.append([_esc(s), _esc(g), "not analysed", "the run did not reach this subject"])
        elif rec.get("status") != "ok":
            frows.append([_esc(s), _esc(g), "<b>failed</b>", _esc(rec.get("error"))])
        else:
            for flag in (rec.get("result") or {}).get("flags") or []:
                frows.append([_esc(s), _esc(g), "review", _esc(flag)])
    if frows:
        parts.append(_table(["subject", "group", "status", "reason"], frows))
    else:
        parts.append("<p>None: every volume was analysed and none was flagged.</p>")

    # ---- overlays
    parts.append('<h2 id="overlays">Segmentation overlays with uncertainty</h2>')
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
                caption = f"{_esc(rec['subject'])} ({_esc(rec['group'])}): {_esc(name)}"
                gallery.append(
                    _img_png(_thumbnail(path), alt=f"{rec['subject']} {name}", caption=caption)
                )
        shown += 1
    if gallery:
        parts.append(
            "<p>Boundaries: blue = skin surface, red = stratum corneum / epidermis junction, "
            "green = DEJ (seed 000 Figure 1). Entropy of the softmax: violet low, yellow high "
            "(seed 000 Figure 2).</p>"
        )
        parts.append(f'<div class="gallery">{"".join(gallery)}</div>')
        n_with = sum(1 for r in records if (r.get("result") or {}).get("images"))
        if n_with > shown:
            parts.append(f"<p>{n_with - shown} more subjects' overlays are in their folders.</p>")
    else:
        parts.append("<p>No overlay images in the subjects' results.</p>")

    # ---- versions
    software, models = _versions(records)
    parts.append('<h2 id="versions">Software and models</h2>')
    parts.append(_table(["package", "version"], [[_esc(k), _esc(v)] for k, v in software.items()]))
    if models:
        parts.append(_table(["model", "details"], [
            [_esc(m["role"]), f"<code>{_esc(json.dumps(m['info'], default=str))}</code>"]
            for m in models
        ]))  # fmt: skip
    if study:
        keep = {
            k: study.get(k) for k in ("function", "options", "manifest", "finished") if k in study
        }
        parts.append(f"<p>Run: <code>{_esc(json.dumps(keep, default=str))}</code></p>")

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )
    return page, figures


def write_report(
    study_dir: str | Path,
    *,
    alpha: float = 0.05,
    title: str = "skinoct study report",
    notes: list[str] | None = None,
    order: list[str] | None = None,
    max_overlays: int = 12,
) -> Path:
    """Write ``DIR/report.html``, ``DIR/stats.json`` and ``DIR/figures/*.png``.

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
    """
    import pandas as pd

    from skinoct.study.stats import group_statistics

    study_dir = Path(study_dir)
    for name in ("scores.csv", "profiles.csv", "study.json"):
        if not (study_dir / name).is_file():
            raise InputError(f"not a study folder: no {name} (run `skinoct study run` first)",
                             path=study_dir)  # fmt: skip
    study = json.loads((study_dir / "study.json").read_text(encoding="utf-8"))
    scores = pd.read_csv(study_dir / "scores.csv", dtype={"subject": str, "group": str})
    profiles = pd.read_csv(study_dir / "profiles.csv", dtype={"subject": str, "group": str})
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
    except InputError as exc:
        stats_error = str(exc)
    page, figures = render_report(
        scores=scores, profiles=profiles, records=records, manifest_subjects=manifest_subjects,
        stats=stats, stats_error=stats_error, title=title, notes=notes, study=study,
        study_dir=study_dir, max_overlays=max_overlays,
    )  # fmt: skip
    from skinoct.io import atomic_path

    for name, data in figures.items():
        with atomic_path(study_dir / "figures" / f"{name}.png") as tmp:
            tmp.write_bytes(data)
    write_json(study_dir / "stats.json",
               stats.to_dict() if stats is not None else {"error": stats_error})  # fmt: skip
    return write_text(study_dir / "report.html", page)


def _manifest_subjects(study: dict, study_dir: Path) -> list[tuple[str, str]]:
    """(subject, group) of every subject in the study, in manifest order."""
    if study.get("subjects"):
        return [(str(s), str(g)) for s, g in study["subjects"]]
    subjects = []  # an older study.json: the stored records are all there is
    for path in sorted((study_dir / "subjects").glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        subjects.append((str(rec.get("subject")), str(rec.get("group"))))
    return subjects


# ------------------------------------------------------------------ browser screenshot

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on ``PATH``, or None."""
    import shutil

    for name in _CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def screenshot_html(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1280,
    height: int = 2200,
    timeout_s: float = 180,
) -> Path:
    """Render a page with headless Chromium into a PNG of ``width`` × ``height`` pixels.

    The flags keep Chromium off the network (no background services, no QUIC) and use a
    fresh profile, so it runs the same on a closed CI machine.

    Raises
    ------
    FileNotFoundError
        If no Chromium is installed.
    RuntimeError
        If Chromium wrote no screenshot (its last stderr lines are in the message).
    """
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("headless Chromium is not installed (apt-get install chromium)")
    png_path = Path(png_path)
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        proc = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                f"--user-data-dir={profile}/p", f"--screenshot={shot}",
                f"--window-size={width},{height}", Path(html_path).resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if not shot.is_file():
            raise RuntimeError(f"Chromium wrote no screenshot: {proc.stderr[-2000:]}")
        png_path.parent.mkdir(parents=True, exist_ok=True)
        png_path.write_bytes(shot.read_bytes())
    return png_path
