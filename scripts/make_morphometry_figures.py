"""Re-create the figures of docs/morphometry.md (docs/img/morphometry_*.png).

Usage: ``python scripts/make_morphometry_figures.py [--out docs/img]``. Deterministic:
phantom data with fixed seeds and analytic test geometry; takes a few seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.integrate import quad

from skinoct.io import atomic_path
from skinoct.morphometry import extract_boundaries, measure_section, measure_volume
from skinoct.morphometry.figures import plot_section, plot_volume_maps
from skinoct.phantom import SectionParams, VolumeParams, render_section, render_volume


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


def section_figure(out: Path) -> None:
    params = SectionParams(width_um=600.0, depth_um=260.0, dej_amplitude_um=14.0, tilt_deg=4.0)
    sec = render_section(params, seed=7)
    m = measure_section(sec.labels, sec.spacing_um)
    fig = plot_section(m, image=sec.image, title="phantom section, ground-truth mask")
    _save(fig, out / "morphometry_section.png")


def _sinusoid_labels(amplitude, period, nx, dz=1.0, dx=1.0):
    x = np.arange(nx) * dx
    z = np.arange(round(160 / dz))[:, None] * dz
    dej = 80 + amplitude * np.cos(2 * np.pi * x / period)
    labels = np.zeros((z.shape[0], nx), np.uint8)
    labels[np.broadcast_to(z >= 20, labels.shape)] = 1
    labels[np.broadcast_to(z >= 30, labels.shape)] = 2
    labels[z >= dej[None]] = 3
    return labels, x, dej


def _arc_ratio(amplitude, period):
    k = 2 * np.pi * amplitude / period
    length, _ = quad(lambda t: np.sqrt(1 + (k * np.cos(2 * np.pi * t / period)) ** 2), 0, period)
    return length / period


def staircase_figure(out: Path) -> None:
    amplitude, period = 10.0, 100.0
    labels, x, truth = _sinusoid_labels(amplitude, period, 800)
    b = extract_boundaries(labels, (1.0, 1.0))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    window = slice(0, 60)
    left.step(x[window], b.raw["dej"][window], where="mid", color="0.5", label="raw (per column)")
    left.plot(x[window], truth[window], "k--", lw=1, label="true DEJ")
    left.plot(x[window], b.dej[window], color="tab:green", lw=2,
              label=f"smoothed (σ = {b.smoothing_um:g} µm)")  # fmt: skip
    left.invert_yaxis()
    left.set_xlabel("x (µm)")
    left.set_ylabel("depth (µm)")
    left.set_title("DEJ z = 80 + 10·cos(2πx/100) µm, 1 µm pixels", fontsize=10)
    left.legend(fontsize=8)
    sigmas = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    for period in (40.0, 60.0, 100.0, 200.0):
        labels, _, _ = _sinusoid_labels(amplitude, period, 800)
        truth_ratio = _arc_ratio(amplitude, period)
        errors = [
            100 * (measure_section(labels, (1.0, 1.0), smoothing_um=s).dej_undulation_index
                   / truth_ratio - 1)
            for s in sigmas
        ]  # fmt: skip
        right.plot(sigmas, errors, "o-", label=f"period {period:g} µm")
    right.axhline(0, color="k", lw=0.8)
    right.axvline(2.0, color="tab:green", ls=":", label="default σ = 2 µm")
    right.axhspan(-1, 1, color="tab:green", alpha=0.1)
    right.set_xlabel("smoothing σ (µm)")
    right.set_ylabel("undulation index error (%)")
    right.set_title("contour-length ratio vs the analytic arc length (A = 10 µm)", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "morphometry_staircase.png")


def volume_figure(out: Path) -> None:
    params = VolumeParams(size_um=(220.0, 300.0, 400.0), dej_amplitude_um=12.0, n_protrusions=3)
    vol = render_volume(params, seed=11)
    m = measure_volume(vol.labels, vol.spacing_um)
    fig = plot_volume_maps(m, title="phantom volume, ground-truth labels")
    _save(fig, out / "morphometry_volume_maps.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    section_figure(args.out)
    staircase_figure(args.out)
    volume_figure(args.out)


if __name__ == "__main__":
    main()
