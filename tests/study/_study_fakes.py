"""Per-volume functions for pipeline tests: fast, deterministic, importable by workers.

Each "volume" is a small .npy array; the fake score is its mean, so the expected table
follows from the test data without running any model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skinoct.errors import InputError
from skinoct.io import write_image

DEPTHS = [0.0, 1.0, 2.0, 3.0]
GROUPS = {"young": 3.0, "old": 2.0, "photo": 1.5}


def make_cohort(root: Path, *, per_group: int = 2, extra_columns: dict | None = None) -> Path:
    """Tiny .npy 'volumes' whose mean is the fake score: group level + subject offset."""
    (root / "volumes").mkdir(parents=True, exist_ok=True)
    rows = []
    for g, level in GROUPS.items():
        for i in range(per_group):
            subject = f"{g}{i:02d}"
            data = np.full((3, 4, 5), level + 0.1 * i, dtype=np.float32)
            np.save(root / "volumes" / f"{subject}.npy", data)
            rows.append(
                {
                    "subject": subject,
                    "group": g,
                    "volume": f"volumes/{subject}.npy",
                    **(extra_columns or {}),
                }
            )
    path = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def expected_score(volume: np.ndarray) -> float:
    return float(volume.mean())


def _log(log_dir, volume: Path) -> None:
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        name = f"{Path(volume).stem}.{os.getpid()}.{time.perf_counter_ns()}"
        (Path(log_dir) / name).write_text("called")


def calls(log_dir) -> list[str]:
    """Subjects (volume stems) the fakes were called on, one entry per call."""
    log_dir = Path(log_dir)
    return sorted(p.name.split(".")[0] for p in log_dir.iterdir()) if log_dir.exists() else []


def fake_analysis(volume, *, out_dir, dej=None, log_dir=None, fail_file=None, sleep_s=0.0):
    """Score = mean voxel value; fails for subjects listed in ``fail_file`` (if any)."""
    _log(log_dir, volume)
    stem = Path(volume).stem
    if fail_file is not None and Path(fail_file).exists():
        if stem in Path(fail_file).read_text().split():
            raise InputError("simulated unreadable volume", path=volume)
    if sleep_s:
        time.sleep(sleep_s)
    data = np.load(volume)
    score = expected_score(data)
    (Path(out_dir) / "note.txt").write_text(f"{score}")
    overlay = np.zeros((40, 60), np.uint8)
    overlay[:, : int(score * 10)] = 200  # width encodes the score: recognisable in the report
    write_image(Path(out_dir) / "overlay.png", overlay, spacing_um=1, axes="zx")
    return {
        "images": {"overlay": "overlay.png"},
        "score": score,
        "profile": {"depth_um": DEPTHS, "score": [score - d / 10 for d in DEPTHS]},
        "metrics": {"epidermis_thickness_um": 50.0 + score, "dej_given": dej is not None},
        "flags": ["uncertain DEJ"] if score > 3.5 else [],
    }


def crash_analysis(volume, *, out_dir, dej=None, crash_stem="", log_dir=None):
    """Kills its own process (like an out-of-memory kill) on ``crash_stem``."""
    _log(log_dir, volume)
    if Path(volume).stem == crash_stem:
        os._exit(9)
    return fake_analysis(volume, out_dir=out_dir, dej=dej)


class Interrupt:
    """In-process only: raise KeyboardInterrupt on call number ``at`` (Ctrl-C mid-run)."""

    def __init__(self, at: int | None = 2) -> None:
        self.n = 0
        self.at = at

    def __call__(self, volume, *, out_dir, dej=None, log_dir=None):
        self.n += 1
        if self.n == self.at:
            raise KeyboardInterrupt
        return fake_analysis(volume, out_dir=out_dir, dej=dej, log_dir=log_dir)


# ---------------------------------------------------------------- analyze_volume stand-ins
# A volume whose dermis voxels hold their depth below the local DEJ (intensity
# 1000 + µm): a tile sampled parallel to the true DEJ is uniform. Its layers are known
# analytically, so the stand-in "segmenter" returns them exactly.

SURFACE_UM, SC_UM, DEJ_MEAN_UM, DEJ_AMPLITUDE_UM, DEJ_PERIOD_UM = 10.3, 22.3, 50.0, 5.0, 90.0


def true_dej(nx: int, dx: float = 1.0) -> np.ndarray:
    x = np.arange(nx) * dx
    return DEJ_MEAN_UM + DEJ_AMPLITUDE_UM * np.sin(2 * np.pi * x / DEJ_PERIOD_UM)


def true_labels(nz: int, nx: int, dz: float = 1.0, dx: float = 1.0) -> np.ndarray:
    z = np.arange(nz)[:, None] * dz
    return (z >= SURFACE_UM).astype(np.uint8) + (z >= SC_UM) + (z >= true_dej(nx, dx)[None])


def layered_volume(shape=(140, 48, 180), spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """uint16 volume: surface 10.3 µm, SC junction 22.3 µm, DEJ 50 + 5 sin(2πx/90) µm."""
    nz, ny, nx = shape
    dz, _, dx = spacing
    z = np.arange(nz)[:, None] * dz
    below = np.clip(np.round(z - true_dej(nx, dx)[None]), 0, 999)  # (z, x)
    return np.broadcast_to((1000 + below)[:, None, :], shape).astype(np.uint16)


def fake_segment_sections(stack, model, *, spacing_um, engine="torch", batch_size=8, **_):
    """The true labels; entropy 0.9 within 6 µm of the DEJ in the left third, else 0."""
    from skinoct.layers import SegmentationResult

    n, nz, nx = np.shape(stack)
    dz, dx = spacing_um
    labels = np.broadcast_to(true_labels(nz, nx, dz, dx), (n, nz, nx)).copy()
    z = np.arange(nz)[:, None] * dz
    near = np.abs(z - true_dej(nx, dx)[None]) <= 6
    near[:, nx // 3 :] = False
    entropy = np.broadcast_to(np.where(near, 0.9, 0.0).astype(np.float32), (n, nz, nx)).copy()
    return SegmentationResult(
        labels=labels,
        probabilities=None,
        entropy=entropy,
        spacing_um=tuple(spacing_um),
        label_values=(0, 1, 2, 3),
    )


def uniformity_grader(tiles, model, *, engine="torch", **_):
    """Grade 4 for a uniform tile (sampled parallel to the true DEJ), grade 1 otherwise."""
    green = np.asarray(tiles, float)[:, 1]
    spread = green.std(axis=(1, 2))
    p = np.zeros((len(green), 4), np.float32)
    p[spread < 5, 3] = 1
    p[spread >= 5, 0] = 1
    return p


# A calibrated DEJ flag of its own (not the bundled model's): 20 µm segments suit the
# test volume's 48 × 180 µm field.
FAKE_MODEL_MANIFEST = {
    "weights_sha256": "0" * 64,
    "uncertainty": {"dej_entropy_threshold": 0.15, "entropy_band_um": 5.0, "min_segment_um": 20.0},
}


def thread_report(volume, *, out_dir, dej=None):
    """The thread share this worker got: torch's, the environment's and the runners'."""
    import torch

    from skinoct.models import default_threads

    return {
        "score": 1.0,
        "metrics": {
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
            "runner_threads": default_threads() or 0,
        },
    }
