"""Training labels that admit where the phantom's DEJ cannot be placed.

Inside a simulated DEJ disruption the renderer blurs the epidermis–dermis
transition (half-width ``_DISRUPTED_UM``) around an apparent junction that wanders
``_DISRUPTED_JITTER_UM`` (s.d.) off the geometric DEJ. The geometric DEJ is still the
label there, so a network trained on these labels learns to place a junction the
image does not show, confidently — and its entropy stops flagging disruptions
(docs/layers.md, "Calibrated DEJ-uncertainty flag"). Marking that band
:data:`~skinoct.io.INDETERMINATE` lets training blend the target from epidermis to
dermis across it instead (:func:`skinoct.layers.soft_targets`), the soft-label idea
of annotator disagreement at ambiguous boundaries.
"""

from __future__ import annotations

import numpy as np

from skinoct.io import DERMIS, EPIDERMIS, INDETERMINATE
from skinoct.phantom._render import _DISRUPTED_JITTER_UM, _DISRUPTED_UM, _RAMP_UM

__all__ = ["DISRUPTED_BAND_UM", "indeterminate_labels"]

#: Default half-width of the indeterminate band at the centre of a disruption: the
#: renderer's blur half-width plus one s.d. of the apparent junction's wander.
DISRUPTED_BAND_UM = _DISRUPTED_UM + _DISRUPTED_JITTER_UM


def indeterminate_labels(section, *, half_width_um: float = DISRUPTED_BAND_UM) -> np.ndarray:
    """The section's labels with its disrupted DEJ band set to 255 (indeterminate).

    Parameters
    ----------
    section : PhantomSection
        A rendered section (:func:`skinoct.phantom.render_section`).
    half_width_um : float
        Half-width of the band around the geometric DEJ at the centre of the
        disruption; it tapers to 0 over the disruption's edges with the renderer's
        own ramp (smoothstep over ``_RAMP_UM``).

    Returns
    -------
    ndarray
        ``uint8 (z, x)``; a copy of ``section.labels`` — unchanged without a
        disruption. Only epidermis and dermis pixels are marked, so each column stays
        ordered: air, SC, epidermis, indeterminate, dermis.
    """
    labels = np.array(section.labels, dtype=np.uint8, copy=True)
    if section.disruption_um is None or not half_width_um > 0:
        return labels
    x0, x1 = section.disruption_um
    # The renderer's taper of the disruption (skinoct.phantom._render.build_scene).
    m = np.clip(np.minimum(section.x_um - x0, x1 - section.x_um) / _RAMP_UM + 0.5, 0.0, 1.0)
    m = m * m * (3 - 2 * m)
    half = float(half_width_um) * m
    dz = float(section.spacing_um[0])
    depth = np.arange(labels.shape[0])[:, None] * dz
    dej = section.boundaries_um["dej"][None, :]
    with np.errstate(invalid="ignore"):
        band = np.abs(depth - dej) < half[None, :]
    band &= (labels == EPIDERMIS) | (labels == DERMIS)
    labels[band] = INDETERMINATE
    return labels
