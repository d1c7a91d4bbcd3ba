"""Phantom datasets for the layer-segmentation model (used by train_layers_bundled.py
and evaluate_layers.py).

Each subject draws a body site, layer thicknesses around the site's values,
pigmentation and DEJ shape; each of its sections draws tilt, curvature, noise,
stripes, blur, pixel spacing and, for a fraction of sections, a DEJ disruption (the
atypical case whose uncertainty the model should flag). Written in the layout
``skinoct layers train`` reads (ARCHITECTURE.md):

    DIR/images/<id>.ome.tif, DIR/masks/<id>.ome.tif, DIR/index.csv (id, subject, site,
    noise, disruption_x0_um, disruption_x1_um, ...), DIR/ground_truth/<id>.csv
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Noise range of the training phantoms (SectionParams.noise; 1 = default LC-OCT look).
TRAIN_NOISE = (0.3, 2.5)


@dataclass(frozen=True)
class DatasetSpec:
    """How a phantom dataset is drawn."""

    n_subjects: int = 48
    sections_per_subject: int = 5
    seed: int = 0
    noise_range: tuple[float, float] = TRAIN_NOISE
    noise_levels: tuple[float, ...] | None = None  # fixed levels instead of a range
    disruption_fraction: float = 0.25
    #: > 0: the DEJ band of a disruption is marked 255 in the masks (that half-width
    #: at its centre, µm; skinoct.phantom.indeterminate_labels).
    indeterminate_um: float = 0.0


def section_params(spec: DatasetSpec) -> list[dict]:
    """The parameter records (kwargs of SectionParams) and ids of every section."""
    from skinoct.phantom import SITE_WEIGHTS, SITES

    rng = np.random.default_rng(spec.seed)
    sites = list(SITE_WEIGHTS)
    out = []
    for s in range(spec.n_subjects):
        site = str(rng.choice(sites, p=list(SITE_WEIGHTS.values())))
        base = SITES[site]
        subject = {
            "site": site,
            "sc_thickness_um": float(base.sc_thickness_um * rng.uniform(0.7, 1.3)),
            "epidermis_thickness_um": float(base.epidermis_thickness_um * rng.uniform(0.75, 1.3)),
            "pigmentation": float(rng.uniform(0, 1)),
            "dej_amplitude_um": float(rng.uniform(3, 25)),
            "dej_wavelength_um": float(rng.uniform(50, 200)),
            "dej_irregularity": float(rng.uniform(0, 1)),
            "matrix_q": float(rng.uniform(1, 4)),
        }
        for k in range(spec.sections_per_subject):
            if spec.noise_levels:
                noise = float(
                    spec.noise_levels[(s * spec.sections_per_subject + k) % len(spec.noise_levels)]
                )
            else:
                noise = float(rng.uniform(*spec.noise_range))
            spacing = (1.0, 1.0)
            if rng.random() < 0.3:
                spacing = (float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.8, 1.5)))
            width = 1200.0
            disruption = None
            if rng.random() < spec.disruption_fraction:
                w = float(rng.uniform(100, 300))
                x0 = float(rng.uniform(100, width - 100 - w))
                disruption = (x0, x0 + w)
            att = tuple(float(a * rng.uniform(0.7, 1.4)) for a in (2.0, 2.5, 3.0))
            params = {
                **subject,
                "width_um": width,
                "depth_um": 512.0,
                "spacing_um": spacing,
                "surface_depth_um": float(rng.uniform(25, 110)),
                "tilt_deg": float(rng.uniform(-12, 12)),
                "curvature": float(rng.uniform(-1, 1)),
                "roughness_um": float(rng.uniform(0.5, 4)),
                "n_protrusions": int(rng.integers(0, 8)),
                "noise": noise,
                "stripes": float(rng.uniform(0, 0.15)),
                "attenuation_per_mm": att,
                "blur_um": 0.0 if rng.random() < 0.6 else float(rng.uniform(0.5, 6)),
                "disruption": disruption,
            }
            out.append(
                {
                    "id": f"p{spec.seed}_s{s:03d}_{k}",
                    "subject": f"subj{s:03d}",
                    "seed": int(rng.integers(0, 2**31)),
                    "params": params,
                }
            )
    return out


def _render_one(item: dict, root: str, indeterminate_um: float = 0.0) -> dict:
    from skinoct.io import write_image
    from skinoct.phantom import SectionParams, indeterminate_labels, render_section

    root_path = Path(root)
    section = render_section(SectionParams(**item["params"]), seed=item["seed"])
    sid = item["id"]
    spacing = section.spacing_um
    write_image(
        root_path / "images" / f"{sid}.ome.tif", section.image, spacing_um=spacing, axes="zx"
    )
    labels = indeterminate_labels(section, half_width_um=indeterminate_um)
    write_image(root_path / "masks" / f"{sid}.ome.tif", labels, spacing_um=spacing, axes="zx")
    x_um = section.x_um  # column j at j·dx (the phantom's convention)
    gt = root_path / "ground_truth" / f"{sid}.csv"
    gt.parent.mkdir(parents=True, exist_ok=True)
    b = section.boundaries_um
    np.savetxt(
        gt,
        np.column_stack([x_um, b["surface"], b["sc_junction"], b["dej"]]),
        delimiter=",",
        header="x_um,surface_um,sc_junction_um,dej_um",
        comments="",
        fmt="%.4f",
    )
    p = item["params"]
    d = p["disruption"]
    return {
        "id": sid,
        "subject": item["subject"],
        "site": p["site"],
        "noise": round(p["noise"], 4),
        "tilt_deg": round(p["tilt_deg"], 3),
        "blur_um": round(p["blur_um"], 3),
        "spacing_dz_um": round(spacing[0], 4),
        "spacing_dx_um": round(spacing[1], 4),
        "disruption_x0_um": "" if d is None else round(d[0], 3),
        "disruption_x1_um": "" if d is None else round(d[1], 3),
    }


def write_phantom_dataset(root: str | Path, spec: DatasetSpec, *, jobs: int = 1) -> Path:
    """Render the sections of ``spec`` into ``root`` (images/, masks/, index.csv)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    items = section_params(spec)
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rows = list(pool.map(_render_one, items, [str(root)] * len(items),
                                 [spec.indeterminate_um] * len(items), chunksize=4))  # fmt: skip
    else:
        rows = [_render_one(item, str(root), spec.indeterminate_um) for item in items]
    with open(root / "index.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


# ---------------------------------------------------------------------------------
# Appearance families (skinoct.phantom.FAMILIES): one dataset per family, and unions
# ---------------------------------------------------------------------------------


def _write_family(args: tuple) -> str:
    from skinoct.phantom import write_section_dataset

    root, family, n, per, seed, indeterminate_um, disruption_fraction, site = args
    if not (Path(root) / "index.csv").is_file():
        write_section_dataset(root, n, seed=seed, family=family, sections_per_subject=per,
                              disruption_fraction=disruption_fraction,
                              indeterminate_um=indeterminate_um, site=site)  # fmt: skip
    return root


def chosen_families(parser, text: str) -> list[str]:
    """The families a ``--families`` value names (``all`` or comma-separated); an unknown
    name is a usage error of ``parser`` (exit 2)."""
    from skinoct.phantom import FAMILIES

    families = list(FAMILIES) if text == "all" else text.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    return families


def family_seed(family: str, seed: int) -> int:
    """Render seed of ``family``: ``seed * 100`` + its position in ``FAMILIES``."""
    from skinoct.phantom import FAMILIES

    return seed * 100 + list(FAMILIES).index(family)


def write_family_datasets(
    root: str | Path,
    families,
    *,
    n_per_family: int,
    sections_per_subject: int = 4,
    seed: int = 0,
    jobs: int = 1,
    indeterminate_um: float = 0.0,
    disruption_fraction: float = 0.2,
    site: str | None = None,
) -> dict[str, Path]:
    """Render ``n_per_family`` sections of each family into ``root/<family>/``.

    ``indeterminate_um``, ``disruption_fraction``, ``site`` (one body site for every
    subject; None: drawn per subject): as :func:`skinoct.phantom.write_section_dataset`.

    Family ``f`` uses seed ``seed * 100 + k`` with ``k`` its position in
    :data:`skinoct.phantom.FAMILIES` (not in ``families``), so a subset of the families
    (leave-one-family-out) renders the same sections as the full set, and two calls with
    different ``seed`` give disjoint subjects. Existing datasets are kept (resumable).
    """
    root = Path(root)
    tasks = [(str(root / f), f, int(n_per_family), int(sections_per_subject),
              family_seed(f, seed), float(indeterminate_um), float(disruption_fraction), site)
             for f in families]  # fmt: skip
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(_write_family, tasks))
    else:
        for task in tasks:
            _write_family(task)
    return {f: root / f for f in families}


def combine_datasets(parts: dict[str, Path], out: str | Path, *, limit: int | None = None) -> Path:
    """One dataset folder from several (hard links; ids and subjects prefixed by part).

    ``index.csv`` keeps ``id, subject, family, site`` (subjects stay grouped within a
    part). ``limit``: at most that many sections of each part (the first ones, i.e.
    whole subjects when it is a multiple of the sections per subject). Rebuilt from
    scratch each call.
    """
    import shutil

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True)
    rows = []
    for name, part in parts.items():
        with open(Path(part) / "index.csv", newline="", encoding="utf-8") as fh:
            for i, r in enumerate(csv.DictReader(fh)):
                if limit is not None and i >= limit:
                    break
                sid = f"{name}_{r['id']}"
                for sub in ("images", "masks"):
                    src = Path(part) / sub / f"{r['id']}.ome.tif"
                    dst = out / sub / f"{sid}.ome.tif"
                    try:
                        dst.hardlink_to(src)
                    except OSError:
                        shutil.copy2(src, dst)
                rows.append({"id": sid, "subject": f"{name}_{r['subject']}",
                             "family": r.get("family", name), "site": r["site"]})  # fmt: skip
    with open(out / "index.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "subject", "family", "site"])
        writer.writeheader()
        writer.writerows(rows)
    return out
