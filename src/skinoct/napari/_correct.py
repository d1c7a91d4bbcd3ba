"""Correcting an edited label mask: anatomical layer order per column, no islands.

:func:`reorder_mask` re-imposes air → stratum corneum → epidermis → dermis from the
top of every column and removes islands. With ``skinoct.layers.decode_ordered`` (the ordered
decoder) available it decodes the edited mask as near-certain probabilities
(0.97 for the painted label), so each column becomes the ordered labelling that
changes the fewest pixels and every label one 4-connected piece; otherwise a local
fallback keeps the largest 4-connected piece of each label, fills the rest from the
nearest kept pixel, and takes the running maximum of the labels down each column.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ordering_violations", "reorder_mask"]


def ordering_violations(labels: np.ndarray) -> int:
    """Number of columns whose labels decrease somewhere with depth (0 for a valid mask)."""
    labels = np.asarray(labels)
    return int((np.diff(labels.astype(np.int16), axis=0) < 0).any(axis=0).sum())


def reorder_mask(labels: np.ndarray) -> np.ndarray:
    """Ordered, island-free version of a section's labels ``(z, x)`` (or each section of a
    ``(z, y, x)`` volume, along y).

    Raises
    ------
    InputError
        Values outside 0–3.
    """
    from skinoct.io import validate_labels

    mask = validate_labels(labels)
    if mask.ndim == 3:
        return np.stack([reorder_mask(mask[:, y, :]) for y in range(mask.shape[1])], axis=1)
    try:
        from skinoct.layers import decode_ordered
    except ImportError:  # the ordered decoder is not in this version of skinoct
        return _fallback(mask)
    probabilities = np.full((4, *mask.shape), 0.01, dtype=np.float32)
    np.put_along_axis(probabilities, mask[None].astype(np.intp), 0.97, axis=0)
    return decode_ordered(probabilities).astype(np.uint8)


def _fallback(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    keep = np.zeros(mask.shape, dtype=bool)
    for value in np.unique(mask):
        pieces, n = ndi.label(mask == value)  # 4-connected in 2-D
        if n:
            sizes = np.bincount(pieces.ravel())[1:]
            keep |= pieces == int(np.argmax(sizes)) + 1
    if not keep.all():  # each removed pixel takes the label of the nearest kept one
        _, (iz, ix) = ndi.distance_transform_edt(~keep, return_indices=True)
        mask = mask[iz, ix]
    return np.maximum.accumulate(mask, axis=0).astype(np.uint8)
