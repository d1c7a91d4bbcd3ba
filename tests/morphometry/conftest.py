"""Synthetic label masks with analytic boundaries for the morphometry tests."""

from __future__ import annotations

import numpy as np
import pytest


def render_mask(shape, spacing_um, surface, sc_junction, dej) -> np.ndarray:
    """Label mask of a section ``(z, x)`` or volume ``(z, y, x)`` from boundary functions.

    Each boundary is a callable of the lateral coordinates in µm (``x`` for a
    section, ``(y, x)`` for a volume; pixel ``j`` at ``j·dx``) returning depths in µm.
    Like :mod:`skinoct.phantom`, row ``i`` samples depth ``i·dz`` and belongs to the
    deepest layer whose upper boundary lies at or above it, so the per-column
    boundary read back from the mask is within half a pixel of the analytic one.
    """
    shape = tuple(shape)
    centres = [np.arange(n) * s for n, s in zip(shape, spacing_um, strict=True)]
    lateral = np.meshgrid(*centres[1:], indexing="ij")
    z = centres[0].reshape((-1,) + (1,) * (len(shape) - 1))
    labels = np.zeros(shape, np.uint8)
    for value, fn in ((1, surface), (2, sc_junction), (3, dej)):
        labels[np.broadcast_to(z >= fn(*lateral)[None], shape)] = value
    return labels


@pytest.fixture
def flat_mask():
    """Flat layers at dz = 0.5, dx = 1.2: surface 10 µm, SC 6 µm, viable epidermis 40 µm."""
    spacing = (0.5, 1.2)
    mask = render_mask(
        (160, 90),
        spacing,
        lambda x: np.full_like(x, 10.0),
        lambda x: np.full_like(x, 16.0),
        lambda x: np.full_like(x, 56.0),
    )
    return mask, spacing


@pytest.fixture
def render():
    """:func:`render_mask`, for tests that build their own geometry."""
    return render_mask
