"""Study figures in the style of seed 002 Figure 3, and per-volume profile plots.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global state, no display needed); :func:`save_figure` writes it atomically.

- :func:`profile_strip_figure` — Figure 3A: each group's mean dermal-quality profile as
  a colour strip, depth 0 µm at the DEJ, red (score 1) to green (score 4).
- :func:`group_bar_figure` — Figure 3B: group means ± SD with the subjects as dots and
  Tukey HSD significance stars (* p < 0.05, ** p < 0.01, *** p < 0.001).
- :func:`subject_profiles_figure` — every subject's profile, one panel per group.
- :func:`profile_figure` — one volume's profile (``skinoct analyze``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinoct.io import atomic_path

__all__ = [
    "GROUP_COLOURS",
    "SCORE_RANGE",
    "group_bar_figure",
    "profile_figure",
    "profile_strip_figure",
    "save_figure",
    "score_colormap",
    "subject_profiles_figure",
]

#: Dermal quality grades run from 1 (coarse, fragmented fibres) to 4 (reticulated).
SCORE_RANGE = (1.0, 4.0)
#: Okabe–Ito colour-blind-safe palette, cycled over groups.
GROUP_COLOURS = ("#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442")


def score_colormap():
    """Red (score 1, altered dermis) → yellow → green (score 4), as in seed 002 Fig. 3A."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "skinoct_quality", ["#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"]
    )


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _colour(i: int) -> str:
    return GROUP_COLOURS[i % len(GROUP_COLOURS)]


def _label(name: str) -> str:
    return str(name).replace("_", " ")


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG, SVG or PDF by suffix), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    return path


def profile_strip_figure(profiles, *, order: list[str] | None = None, title: str | None = None):
    """Figure 3A: the mean depth profile of each group as a colour strip.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Columns ``subject``, ``group``, ``depth_um`` (µm below the local DEJ),
        ``score``.
    order : list of str, optional
        Group order, left to right.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One vertical strip per group, depth increasing downwards from 0 µm (DEJ),
        coloured by the group's mean score on a fixed 1–4 scale, with a colour bar.
    """
    from skinoct.study.stats import group_mean_profiles

    means = group_mean_profiles(profiles, order=order)
    groups = list(dict.fromkeys(means["group"]))
    depths = np.unique(means["depth_um"].to_numpy(float))
    if not groups or depths.size == 0:
        raise ValueError("profiles table holds no scores to draw")
    grid = np.full((depths.size, len(groups)), np.nan)
    index = {d: i for i, d in enumerate(depths)}
    for j, g in enumerate(groups):
        sub = means[means["group"] == g]
        for d, m in zip(sub["depth_um"], sub["mean"], strict=True):
            grid[index[float(d)], j] = m
    step = float(np.median(np.diff(depths))) if depths.size > 1 else 1.0
    fig = _figure(1.6 + 1.25 * len(groups), 4.6)
    ax = fig.add_subplot()
    cmap = score_colormap().with_extremes(bad="#dddddd")
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        vmin=SCORE_RANGE[0],
        vmax=SCORE_RANGE[1],
        aspect="auto",
        interpolation="nearest",
        extent=(-0.5, len(groups) - 0.5, depths[-1] + step / 2, depths[0] - step / 2),
    )
    ax.set_xticks(range(len(groups)), [_label(g) for g in groups])
    ax.set_ylabel("depth below the DEJ (µm)")
    ax.tick_params(axis="x", length=0)
    for j in range(1, len(groups)):
        ax.axvline(j - 0.5, color="white", lw=4)
    cbar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.04)
    cbar.set_label("mean dermal quality score")
    cbar.set_ticks([1, 2, 3, 4])
    ax.set_title(title or "Mean dermal quality profile (0 µm = DEJ)", fontsize=10)
    return fig


def group_bar_figure(
    scores,
    stats,
    *,
    title: str | None = None,
    show_ns: bool = False,
    ylabel: str = "mean dermal quality score",
):
    """Figure 3B: group means ± SD, subjects as dots, Tukey HSD stars.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``subject``, ``group``, ``score`` (the dots).
    stats : GroupStatistics
        From :func:`skinoct.study.group_statistics`; fixes group order, means, SDs
        and the pairs' adjusted p-values.
    title : str, optional
    show_ns : bool
        Also draw brackets for non-significant pairs (labelled "ns").
    ylabel : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = stats.order
    means = np.array([stats.groups[g]["mean"] for g in groups])
    sds = np.nan_to_num(np.array([stats.groups[g]["sd"] for g in groups]))
    fig = _figure(1.8 + 1.1 * len(groups), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    ax.bar(
        x, means, yerr=sds, capsize=6, width=0.62, color=[_colour(i) for i in x],
        alpha=0.85, edgecolor="black", linewidth=0.8, error_kw={"linewidth": 1.2},
    )  # fmt: skip
    rng = np.random.default_rng(0)  # fixed jitter: identical figure on every run
    for i, g in enumerate(groups):
        v = scores.loc[scores["group"].astype(str) == g, "score"].dropna().to_numpy(float)
        ax.scatter(
            i + rng.uniform(-0.16, 0.16, v.size), v, s=14, color="black", alpha=0.6, zorder=3,
            linewidths=0,
        )  # fmt: skip
    top = float(np.nanmax(np.r_[means + sds, scores["score"].dropna().to_numpy(float)]))
    bottom = min(0.0, float(np.nanmin(scores["score"].dropna().to_numpy(float))))
    span = max(top - bottom, 1e-9)
    level = top + 0.06 * span
    pairs = sorted(
        (row for row in stats.tukey if show_ns or row["stars"] != "ns"),
        key=lambda r: abs(groups.index(r["group2"]) - groups.index(r["group1"])),
    )
    for row in pairs:
        i, j = sorted((groups.index(row["group1"]), groups.index(row["group2"])))
        h = 0.025 * span
        ax.plot([i, i, j, j], [level, level + h, level + h, level], color="black", lw=1)
        ax.text((i + j) / 2, level + h, row["stars"], ha="center", va="bottom", fontsize=11)
        level += 0.11 * span
    ax.set_ylim(bottom, level + 0.05 * span)
    ax.set_xticks(x, [f"{_label(g)}\n(n={stats.groups[g]['n']})" for g in groups])
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(
        title or "Group means ± SD (Tukey HSD: * p<0.05, ** p<0.01, *** p<0.001)", fontsize=9
    )
    return fig


def subject_profiles_figure(profiles, *, order: list[str] | None = None):
    """Every subject's depth profile (thin lines) and the group mean (bold), per group.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``subject``, ``group``, ``depth_um``, ``score``.
    order : list of str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from skinoct.study.stats import group_mean_profiles

    means = group_mean_profiles(profiles, order=order)
    groups = list(dict.fromkeys(means["group"]))
    if not groups:
        raise ValueError("profiles table holds no scores to draw")
    fig = _figure(3.0 * len(groups) + 0.6, 3.4)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for k, (ax, g) in enumerate(zip(axes, groups, strict=True)):
        sub = profiles[profiles["group"].astype(str) == g]
        for _, one in sub.groupby("subject", sort=True):
            ax.plot(one["score"], one["depth_um"], color=_colour(k), alpha=0.35, lw=0.8)
        m = means[means["group"] == g]
        ax.plot(m["mean"], m["depth_um"], color="black", lw=2, label="group mean")
        ax.set_title(f"{_label(g)} (n={sub['subject'].nunique()})", fontsize=10)
        ax.set_xlim(SCORE_RANGE[0] - 0.1, SCORE_RANGE[1] + 0.1)
        ax.set_xlabel("score")
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    axes[0].set_ylabel("depth below the DEJ (µm)")
    axes[0].legend(loc="lower left", fontsize=8)
    return fig


def profile_figure(depth_um, score, *, sd=None, title: str | None = None, mean_score=None):
    """One volume's dermal quality profile: score against depth below the DEJ.

    Parameters
    ----------
    depth_um, score : array_like
        Depth below the local DEJ (µm) and the mean expected score there.
    sd : array_like, optional
        Spread over the tiles of each depth, drawn as a band.
    title : str, optional
    mean_score : float, optional
        The volume's mean score, drawn as a vertical line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    depth = np.asarray(depth_um, dtype=float)
    score = np.asarray(score, dtype=float)
    if depth.shape != score.shape or depth.ndim != 1:
        raise ValueError(
            f"depth_um and score must be 1-D of one length: {depth.shape} vs {score.shape}"
        )
    fig = _figure(3.6, 4.2)
    ax = fig.add_subplot()
    cmap = score_colormap()
    ax.imshow(
        np.linspace(SCORE_RANGE[0], SCORE_RANGE[1], 64)[None, :], cmap=cmap, aspect="auto",
        extent=(*SCORE_RANGE, depth.max() if depth.size else 1, depth.min() if depth.size else 0),
        alpha=0.18, vmin=SCORE_RANGE[0], vmax=SCORE_RANGE[1],
    )  # fmt: skip
    if sd is not None:
        sd = np.asarray(sd, dtype=float)
        ax.fill_betweenx(depth, score - sd, score + sd, color="grey", alpha=0.3, lw=0)
    ax.plot(score, depth, color="black", lw=1.6)
    if mean_score is not None and np.isfinite(mean_score):
        ax.axvline(mean_score, color="#0072B2", ls="--", lw=1, label=f"mean {mean_score:.2f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(SCORE_RANGE[0] - 0.05, SCORE_RANGE[1] + 0.05)
    ax.set_xlabel("expected quality score")
    ax.set_ylabel("depth below the DEJ (µm)")
    ax.set_title(title or "Dermal quality profile", fontsize=10)
    return fig
