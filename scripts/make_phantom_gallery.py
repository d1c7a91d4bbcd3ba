"""Render the phantom gallery of docs/phantom.md into docs/img/phantom_*.png.

    .venv/bin/python scripts/make_phantom_gallery.py [--out docs/img]

Deterministic (fixed seeds); takes ~30 s on 2 cores. Images are shown on a log
scale, as LC-OCT viewers do; boundary colours follow seed 000, Fig. 1 (blue surface,
red SC/epidermis junction, green DEJ).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from skinoct.io import atomic_path
from skinoct.phantom import (
    GROUPS,
    SectionParams,
    VolumeParams,
    render_enface,
    render_section,
    render_volume,
    subject_q_profile,
)

LOG_RANGE = (np.log(0.02), np.log(3.0))
CURVES = (("surface", "#3b6cff"), ("sc_junction", "#ff3030"), ("dej", "#30d040"))


def log_image(a: np.ndarray) -> np.ndarray:
    return np.clip((np.log(a) - LOG_RANGE[0]) / (LOG_RANGE[1] - LOG_RANGE[0]), 0, 1)


def save(fig, path: Path, colors: int = 96) -> None:
    """Save a figure as a palette PNG (keeps each file well under 500 kB)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    print(f"{path}: {path.stat().st_size / 1024:.0f} kB")


def sections_figure(out: Path) -> None:
    cases = [
        ("face", SectionParams(site="face"), 1),
        ("forearm, tilted 8°, 3 protrusions",
         SectionParams(site="forearm", tilt_deg=8.0, n_protrusions=3), 2),
        ("back, dome (curvature 0.6/mm)", SectionParams(site="back", curvature=0.6), 3),
        ("palm (thick SC)", SectionParams(site="palm", surface_depth_um=40.0), 4),
        ("face, atypical: DEJ disrupted at 450–750 µm (arrow)",
         SectionParams(site="face", disruption=(450.0, 750.0), pigmentation=0.9), 5),
    ]  # fmt: skip
    fig, axes = plt.subplots(3, 2, figsize=(13.0, 8.4), dpi=100)
    for ax, (title, params, seed) in zip(axes.ravel(), cases, strict=False):
        sec = render_section(params, seed=seed)
        nz, nx = sec.image.shape
        extent = (0, nx * sec.spacing_um[1], nz * sec.spacing_um[0], 0)
        ax.imshow(log_image(sec.image), cmap="gray", vmin=0, vmax=1, extent=extent,
                  interpolation="antialiased")  # fmt: skip
        half = sec.x_um >= sec.x_um[-1] / 2  # curves on the right half only
        for name, colour in CURVES:
            ax.plot(sec.x_um[half], sec.boundaries_um[name][half], color=colour, lw=0.9)
        if sec.disruption_um is not None:
            x0, x1 = sec.disruption_um
            ax.annotate("", xy=(x0, 12), xytext=(x1, 12),
                        arrowprops={"arrowstyle": "<->", "color": "yellow", "lw": 1.5})  # fmt: skip
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel("depth (µm)", fontsize=8)
        ax.tick_params(labelsize=7)
    # 1:1 zoom of the face section: cells flattening under the SC, basal layer, fibres.
    sec = render_section(cases[0][1], seed=cases[0][2])
    ax = axes[2, 1]
    ax.imshow(log_image(sec.image[40:240, 200:660]), cmap="gray", vmin=0, vmax=1,
              extent=(200, 660, 240, 40), interpolation="nearest")  # fmt: skip
    ax.set_title("face, zoom (sampled every 1 µm)", fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("x (µm)", fontsize=8)
    fig.suptitle("Vertical sections, 1.2 × 0.5 mm at 1 µm (log scale; blue surface, "
                 "red SC/epidermis junction, green DEJ)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    save(fig, out / "phantom_sections.png")


def enface_figure(out: Path) -> None:
    qs = (1.0, 2.0, 3.0, 4.0)
    names = ("coarse, fragmented,\nsponge-like", "small fibres,\nuneven",
             "partially\nreticulated", "web-like, elongated,\nreticulated")  # fmt: skip
    fig, axes = plt.subplots(2, 4, figsize=(10.0, 5.6), dpi=100)
    for i, (q, name) in enumerate(zip(qs, names, strict=True)):
        tile = render_enface(q, seed=10 + i)
        grey = tile.stack[1]
        axes[0, i].imshow(grey, cmap="gray", vmin=0, vmax=np.percentile(grey, 99.5))
        axes[0, i].set_title(f"grade {tile.grade} (q = {q:.1f})\n{name}", fontsize=8)
        rgb = np.stack([np.clip(c / np.percentile(tile.stack, 99.5), 0, 1) for c in tile.stack], -1)
        axes[1, i].imshow(rgb[:160, :160])
        axes[1, i].set_xlabel("RGB = z−1, z, z+1 µm (160 µm crop)", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("En-face dermis, 400 × 400 µm at 1 µm (seed 002 grades)", fontsize=10)
    fig.tight_layout()
    save(fig, out / "phantom_enface.png")


def volume_figure(out: Path) -> None:
    def profile(d):
        return np.clip(3.6 - 2.6 * d / 100.0, 1.0, 4.0)

    vol = render_volume(VolumeParams(size_um=(300.0, 250.0, 600.0)), seed=7, q_profile=profile)
    v, (dz, dy, dx) = vol.volume, vol.spacing_um
    nz, ny, nx = v.shape
    fig = plt.figure(figsize=(11.0, 6.6), dpi=100)
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, :2])
    ax.imshow(log_image(v[:, ny // 2, :]), cmap="gray", vmin=0, vmax=1,
              extent=(0, nx * dx, nz * dz, 0))  # fmt: skip
    ax.plot(np.arange(nx) * dx, vol.dej_um[ny // 2], color="#30d040", lw=0.7)
    ax.set_title(f"x–z section at y = {ny // 2 * dy:.0f} µm (green: DEJ)", fontsize=8)
    ax = fig.add_subplot(grid[0, 2])
    ax.imshow(log_image(v[:, :, nx // 2]), cmap="gray", vmin=0, vmax=1,
              extent=(0, ny * dy, nz * dz, 0), aspect="auto")  # fmt: skip
    ax.set_title(f"y–z section at x = {nx // 2 * dx:.0f} µm", fontsize=8)
    ax = fig.add_subplot(grid[0, 3])
    ax.plot(vol.depths_um, vol.q_profile, color="k")
    ax.set_xlim(0, 150)
    ax.set_ylim(1, 4)
    ax.set_xlabel("depth below DEJ (µm)", fontsize=8)
    ax.set_ylabel("q", fontsize=8)
    ax.set_title("ground-truth q(depth)", fontsize=8)
    dej = float(np.nanmean(vol.dej_um))
    for k, offset in enumerate((-25, 10, 45, 90)):
        ax = fig.add_subplot(grid[1, k])
        plane = v[round((dej + offset) / dz)]
        ax.imshow(plane, cmap="gray", vmin=0, vmax=np.percentile(plane, 99.5),
                  extent=(0, nx * dx, ny * dy, 0))  # fmt: skip
        label = "epidermis" if offset < 0 else f"q ≈ {profile(offset):.1f}"
        ax.set_title(f"en face, mean DEJ {offset:+d} µm ({label})", fontsize=8)
    for ax in fig.axes:
        ax.tick_params(labelsize=7)
    fig.suptitle("Volume 300 × 250 × 600 µm: orthogonal views", fontsize=10)
    fig.tight_layout()
    save(fig, out / "phantom_volume.png")


def cohort_figure(out: Path) -> None:
    depths = np.arange(0.0, 71.0)
    rng = np.random.default_rng(0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), dpi=100)
    colours = {"young": "#2a9d3c", "old": "#e0a100", "old_photoexposed": "#d03030"}
    means = {}
    for group, colour in colours.items():
        profiles = np.array([subject_q_profile(group, depths, rng=rng) for _ in range(12)])
        for p in profiles:
            left.plot(depths, p, color=colour, alpha=0.25, lw=0.7)
        left.plot(depths, profiles.mean(axis=0), color=colour, lw=2, label=group)
        means[group] = profiles.mean(axis=1)
    left.set_xlabel("depth below DEJ (µm)")
    left.set_ylabel("q")
    left.set_ylim(1, 4)
    left.legend(fontsize=8)
    left.set_title("12 subjects per group (thin) and group means", fontsize=9)
    for i, (group, m) in enumerate(means.items()):
        right.errorbar(i, m.mean(), yerr=m.std(ddof=1), fmt="o", color=colours[group], capsize=4)
        right.plot(np.full(m.size, i) + rng.uniform(-0.15, 0.15, m.size), m, ".",
                   color=colours[group], alpha=0.5)  # fmt: skip
        target = GROUPS[group]
        right.plot([i - 0.3, i + 0.3], [target.mean_q] * 2, "k--", lw=0.8)
    right.set_xticks(range(3), list(means), fontsize=8)
    right.set_ylabel("subject mean q (0–70 µm)")
    right.set_title("drawn (points) vs seed 002 means (dashed)", fontsize=9)
    fig.tight_layout()
    save(fig, out / "phantom_cohort.png")


def families_figure(out: Path) -> None:
    """Three sections of each appearance family (same geometry sampler, seeds 1–3)."""
    from skinoct.phantom import FAMILIES
    from skinoct.phantom._datasets import family_section_params, sample_subject

    fig, axes = plt.subplots(len(FAMILIES), 3, figsize=(13.0, 2.3 * len(FAMILIES)), dpi=100)
    for row, (name, family) in zip(axes, FAMILIES.items(), strict=True):
        for col, ax in enumerate(row):
            rng = np.random.default_rng(100 + col)
            subject = sample_subject(rng)
            params = family_section_params(rng, family, subject=subject,
                                           disruption_probability=0.0, width_um=1200.0,
                                           depth_um=512.0)  # fmt: skip
            look = family.sample(rng)
            sec = render_section(params, seed=rng, appearance=look)
            nz, nx = sec.image.shape
            extent = (0, nx * sec.spacing_um[1], nz * sec.spacing_um[0], 0)
            img = np.log(sec.image)
            lo, hi = np.percentile(img, (1, 99.7))
            ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1), cmap="gray", vmin=0, vmax=1,
                      extent=extent, aspect="auto", interpolation="antialiased")  # fmt: skip
            half = sec.x_um >= sec.x_um[-1] / 2
            for curve, colour in CURVES:
                ax.plot(sec.x_um[half], sec.boundaries_um[curve][half], color=colour, lw=0.8)
            dz, dx = sec.spacing_um
            ax.set_title(f"{name} ({params.site}, {dz:.2f} × {dx:.2f} µm px)", fontsize=8,
                         loc="left")  # fmt: skip
            ax.tick_params(labelsize=6)
    fig.suptitle("Appearance families (log scale, 1–99.7 % per image; curves on the right half: "
                 "blue surface, red SC/epidermis junction, green DEJ)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    save(fig, out / "phantom_families.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "img")
    parser.add_argument("--only", choices=("sections", "families", "enface", "volume", "cohort"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only == "families":
        families_figure(args.out)
        return
    families_figure(args.out)
    sections_figure(args.out)
    enface_figure(args.out)
    volume_figure(args.out)
    cohort_figure(args.out)


if __name__ == "__main__":
    main()
