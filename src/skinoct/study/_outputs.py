"""The files :func:`skinoct.study.analyze_volume` writes: tables, maps, figures, overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "remove_overlays",
    "write_map_outputs",
    "write_overlays",
    "write_profile_outputs",
]


def _overlay_name(y: int) -> str:
    return f"overlays/section_y{y:04d}.png"


def remove_overlays(out_dir: Path, seg) -> None:
    """Remove the overlays :func:`write_overlays` writes for ``seg`` (and their folder
    when it is left empty): a volume whose analysis fails leaves none behind."""
    for y in seg.overlays:
        (out_dir / _overlay_name(y)).unlink(missing_ok=True)
    folder = out_dir / "overlays"
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def write_overlays(out_dir: Path, image, seg) -> dict[str, str]:
    """``overlays/section_y*.png``: boundaries above, entropy below (known after segmentation).

    ``analyze_volume`` writes them in a background thread during the morphometry, a
    stage that leaves the second core idle.
    """
    from skinoct.layers import boundary_overlay, entropy_overlay, write_rgb_png

    dz, _, dx = image.spacing_um
    images: dict[str, str] = {}
    for y, (section, bounds, entropy) in sorted(seg.overlays.items()):
        top = boundary_overlay(section, bounds, (dz, dx))
        bottom = entropy_overlay(section, entropy)
        rgb = np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom])
        rel = _overlay_name(y)
        write_rgb_png(out_dir / rel, rgb)
        images.setdefault("section overlay (boundaries / entropy)", rel)
    return images


def write_map_outputs(out_dir: Path, image, morph) -> dict[str, str]:
    """``maps/*.npy``, ``maps.png`` and ``uncertainty.png`` (known after the morphometry).

    ``analyze_volume`` writes them in a background thread while the tiles are sampled
    and graded (stages that leave the second core partly idle).
    """
    from skinoct.io import atomic_path
    from skinoct.study.figures import save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    _, dy, dx = image.spacing_um
    metrics = morph["volume_metrics"]
    maps = {
        "dej_um": morph["surfaces"]["dej"],
        "surface_um": morph["surfaces"]["surface"],
        "sc_junction_um": morph["surfaces"]["sc_junction"],
        "epidermis_thickness_um": metrics.epidermis_thickness_map_um,
        "stratum_corneum_thickness_um": metrics.stratum_corneum_thickness_map_um,
        "viable_epidermis_thickness_um": metrics.viable_epidermis_thickness_map_um,
        "dej_entropy": morph["entropy_map"],
        "dej_uncertain": morph["uncertain"],
    }
    for name, array in maps.items():
        with atomic_path(out_dir / "maps" / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array, dtype=bool if array.dtype == bool else np.float32))

    images: dict[str, str] = {}
    from skinoct.morphometry.figures import plot_volume_maps

    fig = plot_volume_maps(metrics, title="thickness and DEJ maps")
    save_figure(fig, out_dir / "maps.png", dpi=90)
    images["thickness and DEJ maps"] = "maps.png"
    band_um = morph.get("dej_summary", {}).get("uncertainty_band_um")
    fig = _uncertainty_figure(morph["entropy_map"], morph["uncertain"], (dy, dx), band_um)
    save_figure(fig, out_dir / "uncertainty.png", dpi=90)
    images["DEJ uncertainty map"] = "uncertainty.png"
    return images


def write_profile_outputs(out_dir: Path, analysis) -> dict[str, str]:
    """``analysis.json``, ``profile.csv`` and ``profile.png`` (after grading)."""
    import pandas as pd

    from skinoct.io import atomic_path, write_json
    from skinoct.study.figures import profile_figure, save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "analysis.json", analysis)
    prof = pd.DataFrame(analysis["profile"])
    with atomic_path(out_dir / "profile.csv") as tmp:
        prof.to_csv(tmp, index=False, float_format="%.6g")

    p = analysis["profile"]
    fig = profile_figure(
        p["depth_um"],
        p["score"],
        sd=p["sd"],
        mean_score=analysis["score"],
        title="Dermal quality profile",
    )
    save_figure(fig, out_dir / "profile.png", dpi=90)
    return {"profile": "profile.png"}


def _uncertainty_figure(entropy_map, uncertain, spacing_yx, band_um=None):
    from matplotlib.figure import Figure

    from skinoct.layers import ENTROPY_COLORMAP

    ny, nx = entropy_map.shape
    dy, dx = spacing_yx
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(
        entropy_map, cmap=ENTROPY_COLORMAP, vmin=0, vmax=1, extent=(0, nx * dx, ny * dy, 0)
    )
    if uncertain is not None and uncertain.any():
        ax.contour(
            (np.arange(nx) + 0.5) * dx,
            (np.arange(ny) + 0.5) * dy,
            uncertain.astype(float),
            levels=[0.5],
            colors="white",
            linewidths=1,
        )
    within = "" if band_um is None else f", mean within ±{band_um:g} µm"
    fig.colorbar(im, ax=ax, label=f"DEJ entropy (normalised{within})")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title("Entropy along the DEJ (white: uncertain areas)", fontsize=10)
    return fig
