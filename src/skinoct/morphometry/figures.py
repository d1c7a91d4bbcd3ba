"""Figures of morphometry results (matplotlib figures built without pyplot; nothing is shown).

Every function returns a :class:`matplotlib.figure.Figure` that no pyplot state holds
(as :mod:`skinoct.study.figures`): nothing to close, and no ``import
matplotlib.pyplot`` (≈ 1.4 s on a 2-core laptop) on the way to a saved PNG.

Colours follow seed 000 (Figure 1): blue = skin surface, red = stratum corneum /
epidermis junction, green = DEJ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinoct.io import atomic_path
from skinoct.morphometry._metrics import SectionMetrics, VolumeMetrics

__all__ = [
    "BOUNDARY_COLORS",
    "plot_section",
    "plot_volume_maps",
    "save_figures",
]

#: Colour of each boundary (seed 000, Figure 1).
BOUNDARY_COLORS = {"surface": "tab:blue", "sc_junction": "tab:red", "dej": "tab:green"}
_THICKNESS_LABELS = {
    "stratum_corneum_thickness_um": ("stratum corneum", "tab:red"),
    "viable_epidermis_thickness_um": ("viable epidermis", "tab:orange"),
    "epidermis_thickness_um": ("epidermis (surface → DEJ)", "tab:green"),
}
_LABEL_COLORS = ["#000000", "#c9a0dc", "#f2c1a0", "#8c5a3c"]  # air, SC, epidermis, dermis


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_section(
    metrics: SectionMetrics,
    *,
    mask: np.ndarray | None = None,
    image: np.ndarray | None = None,
    title: str | None = None,
):
    """Boundaries over the section and the thickness profiles along x.

    Parameters
    ----------
    metrics : SectionMetrics
    mask : ndarray (z, x), optional
        Label mask drawn under the boundaries (colour per layer).
    image : ndarray (z, x), optional
        Grey-level image drawn under the boundaries (takes precedence over ``mask``).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap

    b = metrics.boundaries
    x = b.x_um
    dz, dx = metrics.spacing_um
    fig = _figure(8, 6)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    background = image if image is not None else mask
    if background is not None:
        extent = (0, background.shape[1] * dx, background.shape[0] * dz, 0)
        if image is not None:
            low, high = np.percentile(image, [0.5, 99.5])
            top.imshow(image, cmap="gray", extent=extent, aspect="auto", interpolation="nearest",
                       vmin=low, vmax=high)  # fmt: skip
        else:
            top.imshow(
                mask, cmap=ListedColormap(_LABEL_COLORS), vmin=0, vmax=3, extent=extent,
                aspect="auto", interpolation="nearest",
            )  # fmt: skip
    for name in b:
        top.plot(x, b[name], color=BOUNDARY_COLORS[name], lw=1.5, label=name)
    if metrics.papillae.count:
        px = metrics.papillae.positions_um
        top.plot(px, np.interp(px, x, b.dej), "v", color="white", mec="k", ms=6,
                 label="dermal papillae")  # fmt: skip
    for start, stop in metrics.dej_uncertain_segments:
        top.axvspan(start, stop, color="yellow", alpha=0.25, lw=0)
    if background is None:
        top.invert_yaxis()
    top.set_ylabel("depth (µm)")
    top.legend(loc="lower right", fontsize=8, framealpha=0.8)
    kind = "normal" if metrics.normal else "vertical"
    for key, (label, color) in _THICKNESS_LABELS.items():
        bottom.plot(x, metrics.thickness[key], color=color, label=label)
    bottom.set_xlabel("x (µm)")
    bottom.set_ylabel(f"{kind} thickness (µm)")
    bottom.legend(loc="upper right", fontsize=8, framealpha=0.8)
    bottom.set_xlim(0, len(x) * dx)
    d = metrics.to_dict()
    summary = (
        f"epidermis {d['epidermis_thickness_um']['mean']:.1f} µm, "
        f"SC {d['stratum_corneum_thickness_um']['mean']:.1f} µm, "
        f"DEJ undulation {d['dej_undulation_index']:.3f}, "
        f"papillae {d['dermal_papillae']['count']}"
    )
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=10)
    fig.tight_layout()
    return fig


def plot_volume_maps(metrics: VolumeMetrics, *, title: str | None = None):
    """Epidermis and SC thickness maps and the DEJ depth map, each with a colour bar (µm).

    Returns
    -------
    matplotlib.figure.Figure
    """
    b = metrics.boundaries
    _, dy, dx = metrics.spacing_um
    ny, nx = b.shape
    extent = (0, nx * dx, ny * dy, 0)
    panels = [
        (metrics.epidermis_thickness_map_um, "epidermis thickness (µm)", "viridis"),
        (metrics.stratum_corneum_thickness_map_um, "stratum corneum thickness (µm)", "magma"),
        (metrics.dej_surface_um, "DEJ depth (µm)", "cividis_r"),
    ]
    fig = _figure(14, 4.4)
    axes = fig.subplots(1, 3)
    for ax, (data, label, cmap) in zip(axes, panels, strict=True):
        im = ax.imshow(data, cmap=cmap, extent=extent, interpolation="nearest")
        if label.startswith("DEJ") and metrics.papillae.count:
            pos = metrics.papillae.positions_um
            ax.plot(pos[:, 1], pos[:, 0], "+", color="red", ms=5, label="papillae")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        bar = fig.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label(label)
        ax.set_title(label.replace(" (µm)", ""), fontsize=10)
    d = metrics.to_dict()
    summary = (
        f"DEJ surface-area ratio {d['dej_surface_area_ratio']:.3f}, papillae "
        f"{d['dermal_papillae']['count']} ({d['dermal_papillae']['density_per_mm2']:.0f}/mm²)"
    )
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(
    metrics: SectionMetrics | VolumeMetrics,
    out_dir: str | Path,
    name: str,
    *,
    mask: np.ndarray | None = None,
    dpi: int = 110,
) -> list[Path]:
    """Write the figures of ``metrics`` to ``out_dir`` (atomically) and return the paths.

    A section gives ``<name>.profile.png``; a volume ``<name>.maps.png`` (thickness
    and DEJ maps).
    """
    out_dir = Path(out_dir)
    if isinstance(metrics, VolumeMetrics):
        figures = {f"{name}.maps.png": plot_volume_maps(metrics, title=name)}
    else:
        figures = {f"{name}.profile.png": plot_section(metrics, mask=mask, title=name)}
    paths = []
    for filename, fig in figures.items():
        path = out_dir / filename
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
        paths.append(path)
    return paths
