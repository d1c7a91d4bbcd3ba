"""Label conventions for skin-layer masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinoct.errors import InputError

__all__ = [
    "AIR",
    "DERMIS",
    "EPIDERMIS",
    "INDETERMINATE",
    "LABEL_NAMES",
    "LABEL_VALUES",
    "STRATUM_CORNEUM",
    "check_label_set",
    "validate_labels",
]

AIR = 0  #: background, air or immersion gel above the skin
STRATUM_CORNEUM = 1
EPIDERMIS = 2  #: viable epidermis (below the stratum corneum)
DERMIS = 3

#: Name of each label value, in order.
LABEL_NAMES = {
    AIR: "air",
    STRATUM_CORNEUM: "stratum_corneum",
    EPIDERMIS: "epidermis",
    DERMIS: "dermis",
}
LABEL_VALUES = tuple(LABEL_NAMES)

#: Value a *training* mask may hold where the boundary between two layers cannot be
#: placed (e.g. a disrupted DEJ): training blends the target there from the layer
#: above to the layer below (:func:`skinoct.layers.soft_targets`). Never written in
#: a segmentation result.
INDETERMINATE = 255


def validate_labels(
    data: np.ndarray, *, path: str | Path | None = None, allow_indeterminate: bool = False
) -> np.ndarray:
    """Check that ``data`` is a skin-layer label mask and return it as ``uint8``.

    A mask holds integers 0 (air), 1 (stratum corneum), 2 (viable epidermis) and
    3 (dermis); a class may be absent. Float arrays are accepted only when every
    value is one of those integers. With ``allow_indeterminate`` (training and
    evaluation masks) :data:`INDETERMINATE` (255) is accepted too.

    Raises
    ------
    InputError
        For an empty array, non-integral values, or values outside 0–3.
    """
    data = np.asarray(data)
    if data.size == 0:
        raise InputError("label mask is empty", path=path)
    if data.dtype == bool:
        raise InputError("label mask is boolean; expected integer labels 0–3", path=path)
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise InputError(f"label mask has dtype {data.dtype}; expected integers 0–3", path=path)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise InputError("label mask holds non-integer values; expected 0–3", path=path)
    top = max(LABEL_VALUES)
    if np.issubdtype(data.dtype, np.integer) and data.min() >= 0 and data.max() <= top:
        # the common case (a model's output): two reductions instead of a sort in np.unique
        return data.astype(np.uint8, copy=False)
    values = np.unique(data)
    allowed = (*LABEL_VALUES, INDETERMINATE) if allow_indeterminate else LABEL_VALUES
    foreign = [v for v in values.tolist() if v not in allowed]
    if foreign:
        shown = ", ".join(str(int(v)) for v in foreign[:8])
        extra = f", {INDETERMINATE}=indeterminate" if allow_indeterminate else ""
        raise InputError(
            f"label mask holds values {shown} outside the skinoct labels "
            f"0=air, 1=stratum corneum, 2=epidermis, 3=dermis{extra}",
            path=path,
        )
    return data.astype(np.uint8, copy=False)


def check_label_set(values, *, path=None, error: type[Exception] = InputError) -> tuple[int, ...]:
    """A class set: at least two distinct skinoct labels, returned sorted.

    Shared by datasets (``dataset.json``, ``InputError``) and models (``model.json``,
    ``error=ModelError``), so both accept and refuse the same sets.
    """
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise error(f"unknown class set {values!r}", path=path) from None
    if len(out) < 2 or len(set(out)) != len(out) or any(v not in LABEL_NAMES for v in out):
        raise error(
            f"unknown class set {list(values)!r}: expected two or more distinct labels of "
            "0=air, 1=stratum_corneum, 2=epidermis, 3=dermis",
            path=path,
        )
    return tuple(sorted(out))
