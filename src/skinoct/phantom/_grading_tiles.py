"""Phantom en-face tiles at a grading model's input size (int8 calibration, benchmarks)."""

from __future__ import annotations

import numpy as np

__all__ = ["grading_tiles"]


def grading_tiles(n: int, *, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` phantom en-face tiles (uint8, (n, 3, size, size), q uniform in [1, 4]) and
    their true grades."""
    import torch
    import torch.nn.functional as F

    from skinoct.io import to_uint8
    from skinoct.phantom._enface import grade_of, render_enface

    rng = np.random.default_rng(seed)
    qualities = rng.uniform(1, 4, n)
    stacks = [
        to_uint8(render_enface(float(q), seed=int(rng.integers(2**31))).stack) for q in qualities
    ]
    x = torch.from_numpy(np.stack(stacks)).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).numpy(), np.asarray(grade_of(qualities))
