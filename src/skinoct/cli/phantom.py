"""``skinoct phantom``: synthetic LC-OCT datasets with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from skinoct.cli._common import console, parse_spacing, progress
from skinoct.errors import InputError

app = typer.Typer(
    help="Synthetic LC-OCT sections, en-face tiles, volumes and cohorts with ground truth.",
    no_args_is_help=True,
)

_SEED = "Random seed: the same seed and options give byte-identical files."
_NOISE = "Speckle and detector noise scale (0 = none, 1 = typical LC-OCT)."
_SITES = ("face", "forearm", "back", "palm")


def _spacing(text: str | None, ndim: int) -> tuple[float, ...]:
    values = parse_spacing(text, ndim=ndim)
    if values is None:
        return (1.0,) * ndim
    return values * ndim if len(values) == 1 else values


def _site(site: str, *, allow_mixed: bool) -> str | None:
    if allow_mixed and site == "mixed":
        return None
    if site not in _SITES:
        choices = ", ".join((*_SITES, "mixed") if allow_mixed else _SITES)
        raise InputError(f"--site must be one of {choices}, got {site!r}")
    return site


def _volume_params(size, spacing, site, noise):
    from skinoct.phantom import VolumeParams

    return VolumeParams(
        size_um=tuple(size), spacing_um=_spacing(spacing, 3), site=_site(site, allow_mixed=False),
        noise=noise,
    )  # fmt: skip


@app.command("sections")
def sections(
    n: int = typer.Option(..., "--n", help="Number of vertical sections."),
    out: Path = typer.Option(..., "--out", help="Dataset folder (images/, masks/, index.csv)."),
    seed: int = typer.Option(0, "--seed", help=_SEED),
    spacing: str | None = typer.Option(None, "--spacing", help="Pixel size dz dx in µm."),
    site: str = typer.Option("mixed", "--site", help="face, forearm, back, palm or mixed."),
    noise: float = typer.Option(1.0, "--noise", help=_NOISE),
    disruption_fraction: float = typer.Option(
        0.2, "--disruption-fraction", help="Fraction of sections with a disrupted DEJ segment."
    ),
    per_subject: int = typer.Option(
        4, "--sections-per-subject", help="Sections sharing one subject's skin."
    ),
    width: float = typer.Option(1200.0, "--width", help="Field width in µm."),
    depth: float = typer.Option(512.0, "--depth", help="Field depth in µm."),
    family: str | None = typer.Option(
        None, "--family",
        help="Appearance family (standard, dark-sc-low-contrast, smooth-blurred-coarse, "
        "artefact-heavy) or mixed; sets the look and pixel size. Default: the plain look.",
    ),
) -> int:
    """Vertical sections with label masks and boundary curves (layer-segmentation layout)."""
    from skinoct.phantom import write_section_dataset

    index = write_section_dataset(
        out, n, seed=seed, site=_site(site, allow_mixed=True), sections_per_subject=per_subject,
        noise=noise, disruption_fraction=disruption_fraction, width_um=width, depth_um=depth,
        spacing_um=_spacing(spacing, 2), family=family, progress=progress,
    )  # fmt: skip
    console.print(f"wrote {n} sections to {out} ({index.name})", highlight=False, markup=False)
    return 0


@app.command("enface")
def enface(
    n: int = typer.Option(..., "--n", help="Number of tiles."),
    out: Path = typer.Option(..., "--out", help="Dataset folder (tiles/, tiles.csv, labels.csv)."),
    seed: int = typer.Option(0, "--seed", help=_SEED),
    raters: int = typer.Option(
        0, "--raters", help="Simulated raters in labels.csv (0: the true grade only)."
    ),
    size: float = typer.Option(400.0, "--size", help="Tile side in µm."),
    spacing: str | None = typer.Option(None, "--spacing", help="Pixel size dy dx in µm."),
    noise: float = typer.Option(1.0, "--noise", help=_NOISE),
    per_volume: int = typer.Option(
        10, "--tiles-per-volume", help="Tiles per pseudo-volume (one subject each)."
    ),
    q_distribution: str = typer.Option(
        "uniform",
        "--q-distribution",
        help="'uniform' q in [1, 4] (balanced grades) or 'cohort' (subject profiles).",
    ),
) -> int:
    """En-face dermal-matrix tiles (RGB = z−1, z, z+1) graded 1–4 (tile dataset layout)."""
    from skinoct.phantom import EnfaceParams, write_enface_dataset

    params = EnfaceParams(size_um=size, spacing_um=_spacing(spacing, 2), noise=noise)
    write_enface_dataset(
        out, n, seed=seed, raters=raters, tiles_per_volume=per_volume, params=params,
        q_distribution=q_distribution, progress=progress,
    )  # fmt: skip
    console.print(
        f"wrote {n} tiles to {out} (tiles.csv, labels.csv)", highlight=False, markup=False
    )
    return 0


_SIZE_HELP = "Volume extent Z Y X in µm (LC-OCT 3-D field: 300 500 1200)."
_DEFAULT_SIZE = (300.0, 500.0, 1200.0)


@app.command("volume")
def volume(
    n: int = typer.Option(..., "--n", help="Number of volumes."),
    out: Path = typer.Option(..., "--out", help="Folder (manifest.csv, volumes/, masks/, …)."),
    seed: int = typer.Option(0, "--seed", help=_SEED),
    size: tuple[float, float, float] = typer.Option(_DEFAULT_SIZE, "--size", help=_SIZE_HELP),
    spacing: str | None = typer.Option(None, "--spacing", help="Voxel size dz dy dx in µm."),
    site: str = typer.Option("face", "--site", help="face, forearm, back or palm."),
    noise: float = typer.Option(1.0, "--noise", help=_NOISE),
    masks: bool = typer.Option(True, "--masks/--no-masks", help="Write label volumes."),
) -> int:
    """Volumes with a random group's q(depth) profile, label volumes and DEJ ground truth."""
    from skinoct.phantom import write_volume_dataset

    manifest = write_volume_dataset(
        out, n, seed=seed, params=_volume_params(size, spacing, site, noise),
        write_masks=masks, progress=progress,
    )  # fmt: skip
    console.print(f"wrote {n} volumes to {out} ({manifest.name})", highlight=False, markup=False)
    return 0


@app.command("cohort")
def cohort(
    out: Path = typer.Option(..., "--out", help="Cohort folder (manifest.csv, volumes/, …)."),
    per_group: int = typer.Option(
        12, "--subjects-per-group", "--n", help="Subjects per group (seed 002: 12)."
    ),
    groups: str = typer.Option(
        "young,old,old_photoexposed", "--groups", help="Comma-separated groups."
    ),
    seed: int = typer.Option(0, "--seed", help=_SEED),
    size: tuple[float, float, float] = typer.Option(_DEFAULT_SIZE, "--size", help=_SIZE_HELP),
    spacing: str | None = typer.Option(None, "--spacing", help="Voxel size dz dy dx in µm."),
    site: str = typer.Option("face", "--site", help="face, forearm, back or palm."),
    noise: float = typer.Option(1.0, "--noise", help=_NOISE),
    masks: bool = typer.Option(False, "--masks/--no-masks", help="Also write label volumes."),
) -> int:
    """A study cohort: groups whose dermal matrix differs as in seed 002 (for study run)."""
    from skinoct.phantom import render_cohort

    names = tuple(g.strip() for g in groups.split(",") if g.strip())
    manifest = render_cohort(
        out, groups=names, subjects_per_group=per_group, seed=seed,
        volume_params=_volume_params(size, spacing, site, noise), progress=progress,
        write_masks=masks,
    )  # fmt: skip
    console.print(
        f"wrote {per_group * len(names)} subjects to {out} ({manifest.name})",
        highlight=False,
        markup=False,
    )
    return 0
