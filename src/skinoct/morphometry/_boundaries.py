"""Layer boundaries (surface, SC junction, DEJ) from a label mask.

Geometry conventions (shared by every function of :mod:`skinoct.morphometry`):

* pixel ``i`` along an axis with spacing ``s`` is the sample at ``i·s`` µm (as in
  :mod:`skinoct.phantom` and the phantom's ground-truth CSV): row ``i`` lies at
  depth ``i·dz``, column ``j`` at ``x = j·dx``;
* the boundary between rows ``k-1`` and ``k`` of a label mask lies half way between
  them, at depth ``(k - 0.5)·dz``, so a layer of ``n`` pixels is ``n·dz`` thick and a
  boundary sampled by the phantom (labels from ``i·dz ≥ b``) is read back without
  bias, within ±dz/2;
* with class probabilities the boundary is where the probability of "this class or a
  deeper one" crosses 0.5, interpolated linearly between the samples (one-hot
  probabilities give back the label boundary).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from skinoct.errors import InputError
from skinoct.io import DERMIS, EPIDERMIS, STRATUM_CORNEUM, check_spacing, validate_labels
from skinoct.morphometry._smoothing import smooth_boundary

__all__ = ["BOUNDARY_NAMES", "Boundaries", "default_smoothing_um", "extract_boundaries"]

#: Boundary names, top to bottom, and the first label value below each.
BOUNDARY_NAMES = ("surface", "sc_junction", "dej")
_FIRST_LABEL_BELOW = {"surface": STRATUM_CORNEUM, "sc_junction": EPIDERMIS, "dej": DERMIS}

#: Components smaller than this fraction of the largest one are dropped as islands.
_MIN_COMPONENT_FRACTION = 0.01
#: A component is an island (dropped) when more than this fraction of its footprint
#: lies under or over a larger component kept before it.
_MAX_FOOTPRINT_OVERLAP = 0.5


def default_smoothing_um(spacing_um) -> float:
    """Default boundary smoothing σ in µm: 2 µm, or 2 pixels of the coarsest axis if larger.

    At LC-OCT's ≈1 µm sampling this is σ = 2 µm, which removes the pixel staircase
    (contour-length ratio of a sampled sinusoid within 0.5 %) while keeping 99.9 % of
    the amplitude of undulations with a period of 40 µm or more.
    """
    return max(2.0, 2.0 * float(max(spacing_um)))


@dataclass(frozen=True)
class Boundaries:
    """Depths of the three skin boundaries, in µm from the top of the image.

    Each boundary is an array of shape ``(n_x,)`` for a vertical section or
    ``(n_y, n_x)`` for a volume, NaN where the boundary is absent (layer missing,
    cut at the image edge). Access by attribute or key: ``b.dej`` or ``b["dej"]``.

    Attributes
    ----------
    surface, sc_junction, dej : ndarray
        Smoothed boundary depths (µm), the ones every metric uses.
    raw : dict of str to ndarray
        The same boundaries before smoothing (half way between label rows, or
        sub-pixel from probabilities).
    spacing_um : tuple of float
        Spacing of the mask the boundaries come from ``(dz, dx)`` or ``(dz, dy, dx)``.
    smoothing_um : float
        σ of the lateral smoothing in µm (0: none).
    """

    surface: np.ndarray = field(repr=False)
    sc_junction: np.ndarray = field(repr=False)
    dej: np.ndarray = field(repr=False)
    spacing_um: tuple[float, ...]
    smoothing_um: float
    raw: Mapping[str, np.ndarray] = field(repr=False, default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in BOUNDARY_NAMES:
            raise KeyError(f"{name!r}; boundaries are {', '.join(BOUNDARY_NAMES)}")
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(BOUNDARY_NAMES)

    def keys(self) -> tuple[str, ...]:
        return BOUNDARY_NAMES

    def items(self):
        return [(name, self[name]) for name in BOUNDARY_NAMES]

    @property
    def shape(self) -> tuple[int, ...]:
        """Lateral shape: ``(n_x,)`` or ``(n_y, n_x)``."""
        return tuple(self.surface.shape)

    @property
    def lateral_spacing_um(self) -> tuple[float, ...]:
        return tuple(self.spacing_um[1:])

    @property
    def x_um(self) -> np.ndarray:
        """Lateral position of each column in µm (``j·dx``)."""
        return np.arange(self.shape[-1]) * self.spacing_um[-1]

    @property
    def y_um(self) -> np.ndarray:
        """Position of each row along y in µm (``i·dy``; volumes only)."""
        if len(self.shape) != 2:
            raise AttributeError("y_um exists only for boundaries of a volume")
        return np.arange(self.shape[0]) * self.spacing_um[1]

    @property
    def coverage(self) -> dict[str, float]:
        """Fraction of columns (or (y, x) positions) where each boundary is present."""
        return {name: float(np.mean(np.isfinite(self[name]))) for name in BOUNDARY_NAMES}


def extract_boundaries(
    labels: np.ndarray,
    spacing_um,
    *,
    probabilities: np.ndarray | None = None,
    smoothing_um: float | None = None,
) -> Boundaries:
    """Find the surface, SC/epidermis junction and DEJ in every column of a label mask.

    The mask is cleaned first: for each boundary, the region "at or below it" (labels
    ≥ 1, ≥ 2, ≥ 3, each inside the previous one) keeps its largest connected
    component plus large components beside it (a layer cut by a shadow), and drops
    islands lying over or under a larger component (debris in the gel, a blob of
    dermis inside the epidermis). Holes inside a layer do not matter: each boundary
    is the top of its region in that column.

    A boundary is NaN in a column where the layer below it is absent, where the layer
    above it is absent (no stratum corneum over the epidermis means no SC junction
    there), or where it coincides with the top edge of the image (the mask is cut and
    the true boundary may lie above it).

    Parameters
    ----------
    labels : ndarray of int, (z, x) or (z, y, x)
        Label mask: 0 air/gel, 1 stratum corneum, 2 viable epidermis, 3 dermis.
    spacing_um : sequence of float
        Pixel size in µm per axis, ``(dz, dx)`` or ``(dz, dy, dx)``.
    probabilities : ndarray, optional
        Class probabilities (softmax output) of shape ``(4, *labels.shape)``; when
        given, boundaries are placed with sub-pixel precision at the 0.5 crossing.
    smoothing_um : float, optional
        σ in µm of the lateral smoothing (Gaussian-weighted local quadratic
        regression, see :func:`skinoct.morphometry.smooth_boundary`). Default
        :func:`default_smoothing_um`: 2 µm at 1 µm pixels. 0 disables it.

    Returns
    -------
    Boundaries

    Raises
    ------
    InputError
        For a mask that is not 2-D/3-D, holds values outside 0–3 or no skin, a bad
        spacing, or probabilities of the wrong shape or range.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((40, 10), np.uint8)
    >>> labels[10:14], labels[14:30], labels[30:] = 1, 2, 3
    >>> b = extract_boundaries(labels, (0.5, 1.0))
    >>> float(b.dej[0]), b.coverage["dej"]
    (14.75, 1.0)
    """
    labels = _check_labels(labels)
    spacing = check_spacing(spacing_um, labels.ndim)
    if smoothing_um is None:
        smoothing_um = default_smoothing_um(spacing)
    smoothing_um = float(smoothing_um)
    if not np.isfinite(smoothing_um) or smoothing_um < 0:
        raise InputError(f"smoothing_um must be a number >= 0, got {smoothing_um}")
    probs = None if probabilities is None else _check_probabilities(probabilities, labels.shape)

    regions = _clean_regions(labels)
    dz = spacing[0]
    nz = labels.shape[0]
    tops = {}
    for name, region in zip(BOUNDARY_NAMES, regions, strict=True):
        present = region.any(axis=0)
        top = np.where(present, np.argmax(region, axis=0), nz)
        tops[name] = top
    raw = {}
    for i, name in enumerate(BOUNDARY_NAMES):
        top = tops[name]
        valid = (top < nz) & (top > 0)
        if i > 0:  # the layer above must be present in the column
            valid &= tops[BOUNDARY_NAMES[i - 1]] < top
        depth = np.where(valid, (top - 0.5) * dz, np.nan)
        if probs is not None:
            cumulative = probs[_FIRST_LABEL_BELOW[name] :].sum(axis=0)
            depth = _refine_subpixel(depth, top, valid, cumulative, dz)
        raw[name] = depth
    lateral = spacing[1:]
    smooth = {name: smooth_boundary(raw[name], lateral, sigma_um=smoothing_um) for name in raw}
    return Boundaries(
        surface=smooth["surface"],
        sc_junction=smooth["sc_junction"],
        dej=smooth["dej"],
        spacing_um=spacing,
        smoothing_um=smoothing_um,
        raw=raw,
    )


# --------------------------------------------------------------------------- helpers


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise InputError(
            f"label mask must be 2-D (z, x) or 3-D (z, y, x), got shape {labels.shape}"
        )
    labels = validate_labels(labels)
    if not (labels > 0).any():
        raise InputError("label mask holds no skin (every pixel is 0 = air)")
    return labels


def _check_probabilities(probabilities, shape: tuple[int, ...]) -> np.ndarray:
    probs = np.asarray(probabilities)
    if probs.dtype not in (np.float32, np.float64):
        probs = probs.astype(np.float32)
    if probs.shape != (4, *shape):
        raise InputError(
            f"probabilities must have shape (4, *mask.shape) = {(4, *shape)}, got {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
        raise InputError("probabilities must be finite values in [0, 1]")
    return probs


def _clean_regions(labels: np.ndarray) -> list[np.ndarray]:
    """Nested regions labels ≥ 1, ≥ 2, ≥ 3, each cleaned of islands."""
    regions = []
    parent = np.ones(labels.shape, bool)
    for value in (STRATUM_CORNEUM, EPIDERMIS, DERMIS):
        region = _keep_main_components((labels >= value) & parent)
        regions.append(region)
        parent = region
    return regions


def _keep_main_components(region: np.ndarray) -> np.ndarray:
    """Keep the largest component and the large ones laterally beside it."""
    if _single_column_component(region):
        return region
    structure = ndimage.generate_binary_structure(region.ndim, region.ndim)
    lab, n = ndimage.label(region, structure=structure)
    if n <= 1:
        return region
    boxes = ndimage.find_objects(lab)
    # sizes within each bounding box: avoids a pass (and an intp copy) over the whole
    # label volume per component, as np.bincount would need
    sizes = np.array([np.count_nonzero(lab[box] == i + 1) for i, box in enumerate(boxes)])
    covered = np.zeros(region.shape[1:], bool)
    keep = np.zeros(n + 1, bool)
    for i in np.argsort(-sizes, kind="stable"):
        if sizes[i] < _MIN_COMPONENT_FRACTION * sizes.max():
            break
        box = boxes[i]
        footprint = (lab[box] == i + 1).any(axis=0)
        overlap = np.count_nonzero(footprint & covered[box[1:]])
        if overlap <= _MAX_FOOTPRINT_OVERLAP * np.count_nonzero(footprint):
            keep[i + 1] = True
            covered[box[1:]] |= footprint
    return keep[lab]


def _single_column_component(region: np.ndarray) -> bool:
    """True when ``region`` is provably one connected component (nothing to clean).

    In an anatomically ordered mask (what ordered decoding writes) every column of a
    region "labels ≥ k" runs from its top down to the last row. Columns that hold the
    region are then joined through that row exactly when they are lateral neighbours,
    so the region's components are those of its footprint (the last row); a
    one-piece footprint means one component. Far cheaper than labelling the region
    (a 2-D footprint of a 3-D volume, a 1-D one of a section); exact, not a heuristic.
    """
    if region.shape[0] < 2 or not np.all(region[1:] >= region[:-1]):
        return False  # some column is not a run down to the bottom: label it in full
    footprint = region[-1]
    if footprint.ndim == 1:
        # runs of True in a 1-D footprint
        return (
            int(np.count_nonzero(np.diff(footprint.astype(np.int8)) == 1)) + int(footprint[0]) <= 1
        )
    structure = ndimage.generate_binary_structure(footprint.ndim, footprint.ndim)
    return ndimage.label(footprint, structure=structure)[1] <= 1


def _refine_subpixel(depth, top, valid, cumulative, dz):
    """Move each boundary to the 0.5 crossing of ``cumulative`` next to its label edge."""
    nz = cumulative.shape[0]
    out = depth.copy()
    done = ~valid
    # the crossing nearest the label edge first: between rows top-1 and top, then further
    for offset in (-1, -2, 0, -3, 1):
        j = top + offset
        ok = ~done & (j >= 0) & (j + 1 < nz)
        if not ok.any():
            continue
        jj = np.clip(j, 0, nz - 2)
        p0 = np.take_along_axis(cumulative, jj[None], axis=0)[0]
        p1 = np.take_along_axis(cumulative, (jj + 1)[None], axis=0)[0]
        crossing = ok & (p0 < 0.5) & (p1 >= 0.5)
        frac = np.where(crossing, (0.5 - p0) / np.where(crossing, p1 - p0, 1.0), 0.0)
        out = np.where(crossing, (jj + frac) * dz, out)
        done |= crossing
    return out
