"""DEJ shape: undulation index, surface-area ratio, amplitude and dermal papillae."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from skinoct.morphometry._peaks import h_maxima_mask, prominences, regional_maxima
from skinoct.morphometry._smoothing import nan_gradient

__all__ = [
    "Papillae",
    "amplitudes",
    "contour_length_ratio",
    "find_papillae_profile",
    "find_papillae_surface",
    "peak_to_valley",
    "rms_amplitude",
    "surface_area_ratio",
]


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], valid, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def contour_length_ratio(depth: np.ndarray, dx_um: float) -> float:
    """DEJ contour length divided by its lateral extent (1.0 for a flat DEJ).

    The undulation (interdigitation) index of a vertical section: the length of the
    DEJ profile, summed over its valid runs as the polyline through the (smoothed)
    column depths, divided by the lateral distance those runs span.

    References
    ----------
    Timár F, Soós G, Szende B, Horváth A (2000). Interdigitation index – a
    parameter for differentiating between young and older skin specimens. Skin Res
    Technol 6:17–20 (DEJ length / straight length).
    Newton VL, et al. (2017). Novel approaches to characterize age-related
    remodelling of the dermal-epidermal junction in 2D, 3D and in vivo. Skin Res
    Technol 23:131–148 (DEJ convolution as contour-length ratio).
    """
    depth = np.asarray(depth, float)
    length = extent = 0.0
    for start, stop in _runs(np.isfinite(depth)):
        if stop - start < 2:
            continue
        run = depth[start:stop]
        length += float(np.sum(np.hypot(dx_um, np.diff(run))))
        extent += (stop - start - 1) * dx_um
    return length / extent if extent > 0 else float("nan")


def surface_area_ratio(depth: np.ndarray, spacing_um: Sequence[float]) -> float:
    """Area of the surface ``z = f(y, x)`` divided by its projected area (1.0 if flat).

    ``∬ sqrt(1 + f_x² + f_y²) dx dy / ∬ dx dy`` over the valid positions, with the
    slopes from central differences of the (smoothed) surface in physical units —
    the 3-D counterpart of the contour-length ratio ("DEJ surface-area ratio" /
    3-D interdigitation).

    References
    ----------
    Newton VL, et al. (2017). Skin Res Technol 23:131–148 (3-D DEJ surface area).
    """
    depth = np.asarray(depth, float)
    fy = nan_gradient(depth, spacing_um[0], axis=0)
    fx = nan_gradient(depth, spacing_um[1], axis=1)
    element = np.sqrt(1.0 + fx**2 + fy**2)
    ok = np.isfinite(element) & np.isfinite(depth)
    return float(element[ok].mean()) if ok.any() else float("nan")


def _plane_residual(depth: np.ndarray, spacing_um: Sequence[float]) -> np.ndarray:
    """Residual of ``depth`` about its least-squares line (1-D) or plane (2-D)."""
    valid = np.isfinite(depth)
    out = np.full(depth.shape, np.nan)
    coords = [np.arange(n) * s for n, s in zip(depth.shape, spacing_um, strict=True)]
    grids = np.meshgrid(*coords, indexing="ij")
    design = np.stack([np.ones(int(valid.sum()))] + [g[valid] for g in grids], axis=1)
    if valid.sum() <= design.shape[1]:
        return out
    # centre the coordinates for conditioning; the residual is unchanged
    design[:, 1:] -= design[:, 1:].mean(axis=0)
    coef, *_ = np.linalg.lstsq(design, depth[valid], rcond=None)
    out[valid] = depth[valid] - design @ coef
    return out


def _extrema(residual: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
    """``(class, index)`` of the crests (0) and troughs (1) of an undulation.

    Regional extrema of dynamic ≥ 10 % of the 1–99 % range (h-maxima, 8-connected as
    :func:`skimage.morphology.h_maxima`), away from the border and from gaps (a crest
    cut by the edge of the field is lower than it is). Each 4-connected component of
    the h-maxima gives its first highest pixel (raster order), in the order of the
    components' first pixels.
    """
    valid = np.isfinite(residual)
    lo, hi = np.percentile(residual[valid], [1, 99])
    h = 0.1 * float(hi - lo)
    if not h > 0:
        return []
    edge = ~ndimage.binary_erosion(valid, border_value=0)
    found = []
    for cls, sign in ((0, -1.0), (1, 1.0)):  # crest = least deep = maximum of -depth
        image = np.where(valid, sign * residual, np.nanmin(sign * residual) - h)
        labels, n = ndimage.label(h_maxima_mask(image, h))
        if n == 0:
            continue
        flat = np.flatnonzero(labels)  # raster order
        lab = labels.ravel()[flat]
        cut = np.zeros(n + 1, bool)
        np.logical_or.at(cut, lab, edge.ravel()[flat])
        # per component, its highest pixel, the first one in raster order on a tie
        order = np.lexsort((flat, -image.ravel()[flat], lab))
        starts = order[np.flatnonzero(np.diff(lab[order], prepend=-1))]
        for k in starts:
            if not cut[lab[k]]:
                found.append((cls, tuple(int(i) for i in np.unravel_index(flat[k], image.shape))))
    return found


def _detrend(depth: np.ndarray, spacing_um: Sequence[float]) -> np.ndarray:
    """Residual of ``depth`` about a reference line (1-D) or plane (2-D) that removes the
    tilt of the skin, not its undulation.

    A plain least-squares line absorbs part of an undulation: over a whole number of
    periods ``sin(2πx/P)`` still correlates with ``x``, so the fitted line tilts and
    the peak-to-valley of a 20 µm-amplitude sinusoid over 5 whole periods reads
    45.3 µm instead of 40. Here the tilt is estimated from the undulation's crests
    and troughs instead: the regional extrema of the least-squares residual
    (h-maxima, dynamic ≥ 10 % of its range, not cut by the border or a gap) are
    fitted by two parallel lines (planes), one through the crests and one through the
    troughs, with a common slope — the crests of a tilted undulation lie on a line of
    the tilt's slope however many whole or fractional periods the field holds. The
    reference has that slope and the mean of the depths (zero-mean residual, as the
    ISO 4287 mean line). Without enough extrema to fix a slope (a flat or nearly
    straight DEJ, less than about one period) the least-squares line is used, which
    then has no undulation to absorb.

    References
    ----------
    ISO 4287:1997 (mean line, Rq, Rt); P. Soille, *Morphological Image Analysis*,
    2nd ed., Springer 2003, §6.3.5 (h-maxima: regional maxima of given dynamic).
    """
    depth = np.asarray(depth, float)
    residual = _plane_residual(depth, spacing_um)
    valid = np.isfinite(residual)
    if not valid.any():
        return residual
    points = _extrema(residual)
    coords = [np.arange(n) * s for n, s in zip(depth.shape, spacing_um, strict=True)]
    classes = sorted({c for c, _ in points})
    if len(points) < len(classes) + depth.ndim + 1:
        return residual
    design = np.array([[float(c == k) for k in classes] + [coords[a][p[a]] for a in
                       range(depth.ndim)] for c, p in points])  # fmt: skip
    if np.linalg.matrix_rank(design) < design.shape[1]:
        return residual
    target = np.array([depth[p] for _, p in points])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    grids = np.meshgrid(*coords, indexing="ij")
    out = depth - sum(b * g for b, g in zip(coef[len(classes):], grids, strict=True))
    return out - np.mean(out[valid])


def rms_amplitude(depth: np.ndarray, spacing_um: Sequence[float]) -> float:
    """RMS of the DEJ depth about its reference line (2-D) or plane (3-D), µm.

    The profile roughness parameter Rq (ISO 4287): the root-mean-square deviation
    from the mean line (plane) of the DEJ, so tilted skin has none. The reference's
    slope comes from the DEJ's crests and troughs, so that it removes the tilt without
    absorbing part of the undulation (see :func:`_detrend`).

    References
    ----------
    ISO 4287:1997 Geometrical product specifications – surface texture: profile
    method – terms, definitions and surface texture parameters (Rq).
    """
    return amplitudes(depth, spacing_um)[0]


def peak_to_valley(depth: np.ndarray, spacing_um: Sequence[float]) -> float:
    """Peak-to-valley height of the DEJ about its reference line or plane, µm.

    ISO 4287 Rt (total height of the profile) about the same reference line or plane
    as :func:`rms_amplitude`: a tilted sinusoidal DEJ of amplitude A reads 2A (within
    0.1 µm for A = 20 µm sampled every 1 µm), however many whole or fractional periods
    the field holds, with or without gaps.
    """
    return amplitudes(depth, spacing_um)[1]


def amplitudes(depth: np.ndarray, spacing_um: Sequence[float]) -> tuple[float, float]:
    """``(rms_amplitude, peak_to_valley)`` of a DEJ from one detrending (µm)."""
    residual = _detrend(depth, spacing_um)
    residual = residual[np.isfinite(residual)]
    if not residual.size:
        return float("nan"), float("nan")
    return float(np.sqrt(np.mean(residual**2))), float(residual.max() - residual.min())


@dataclass(frozen=True)
class Papillae:
    """Dermal papillae found on a DEJ profile or surface.

    Attributes
    ----------
    positions_um : ndarray
        ``(n,)`` x positions (profile) or ``(n, 2)`` (y, x) positions (surface), µm.
    heights_um : ndarray
        Prominence of each papilla (µm): how far its apex rises above the lowest
        point it must pass to reach a higher one.
    widths_um : ndarray
        Width at half prominence (profile) or equivalent diameter of the region
        above half prominence (surface), µm.
    area_um : float
        Lateral extent (µm) or projected area (µm²) searched.
    truncated : ndarray of bool
        Papillae cut by the edge of the field: on a profile, those whose prominence
        is set by the end of the DEJ (the valley on that side is not seen); on a
        surface, those whose half-prominence region reaches the border or a gap.
        They are counted, but left out of ``mean_height_um`` and ``mean_width_um``
        unless no other papilla exists.
    """

    positions_um: np.ndarray
    heights_um: np.ndarray
    widths_um: np.ndarray
    area_um: float
    truncated: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.heights_um.size)

    def summary(self, *, per: str) -> dict[str, float]:
        """``{count, density_per_mm | density_per_mm2, mean_height_um, mean_width_um}``."""
        nan = float("nan")
        scale = 1e3 if per == "mm" else 1e6
        density = self.count / (self.area_um / scale) if self.area_um > 0 else nan
        use = np.ones(self.count, bool) if self.truncated is None else ~self.truncated
        if not use.any():
            use = np.ones(self.count, bool)
        return {
            "count": self.count,
            f"density_per_{per}": float(density),
            "mean_height_um": float(self.heights_um[use].mean()) if self.count else nan,
            "mean_width_um": float(self.widths_um[use].mean()) if self.count else nan,
        }


def find_papillae_profile(
    depth: np.ndarray, dx_um: float, *, prominence_um: float = 5.0
) -> Papillae:
    """Dermal papillae on a DEJ profile: local minima of depth (dermis reaching up).

    Each valid run of the (smoothed) DEJ depth is searched with
    :func:`scipy.signal.find_peaks` on ``−depth`` with ``prominence ≥ prominence_um``;
    the height of a papilla is its prominence, its width the width at half
    prominence. Minima at the ends of a run are not counted (their extent is unknown).

    References
    ----------
    Dermal papillae counted per mm of DEJ on vertical sections, as in OCT / RCM /
    LC-OCT studies of the DEJ: Neerken S, et al. (2004). Characterization of
    age-related effects in human skin: a comparative study that applies confocal
    laser scanning microscopy and optical coherence tomography. J Biomed Opt
    9:274–281; Monnier J, et al. (2020). In vivo characterization of healthy human
    skin with a novel, non-invasive imaging technique: line-field confocal optical
    coherence tomography. J Eur Acad Dermatol Venereol 34:2914–2921.
    """
    from scipy.signal import find_peaks

    depth = np.asarray(depth, float)
    positions, heights, widths, truncated = [], [], [], []
    extent = 0.0
    for start, stop in _runs(np.isfinite(depth)):
        extent += (stop - start) * dx_um
        if stop - start < 3:
            continue
        peaks, props = find_peaks(
            -depth[start:stop], prominence=prominence_um, width=0, rel_height=0.5
        )
        height = -depth[start:stop]
        keep = _separated(height, peaks, prominence_um)
        left, right = props["left_bases"], props["right_bases"]
        left_low, right_low = height[left], height[right]
        cut = ((right == height.size - 1) & (right_low >= left_low)) | (
            (left == 0) & (left_low >= right_low)
        )
        positions.extend(((start + peaks[keep]) * dx_um).tolist())
        heights.extend(props["prominences"][keep].tolist())
        widths.extend((props["widths"][keep] * dx_um).tolist())
        truncated.extend(cut[keep].tolist())
    return Papillae(
        np.asarray(positions),
        np.asarray(heights),
        np.asarray(widths),
        extent,
        np.asarray(truncated, bool),
    )


def _separated(height: np.ndarray, peaks: np.ndarray, prominence: float) -> np.ndarray:
    """Drop all but one of peaks of equal height not separated by a dip of ``prominence``.

    :func:`scipy.signal.find_peaks` gives *each* of two exactly equal peaks the full
    prominence (it only stops at a strictly higher peak), so the twin extrema that
    smoothing leaves on the flat apex of a pixelated papilla would count twice.
    """
    keep = np.ones(peaks.size, bool)
    last = None
    for k, p in enumerate(peaks):
        if last is not None:
            q = peaks[last]
            dip = min(height[q], height[p]) - height[q : p + 1].min()
            if dip < prominence:
                # same papilla: keep the higher apex (the first one on a tie)
                if height[p] > height[q]:
                    keep[last] = False
                    last = k
                else:
                    keep[k] = False
                continue
        last = k
    return keep


def find_papillae_surface(
    depth: np.ndarray, spacing_um: Sequence[float], *, prominence_um: float = 5.0
) -> Papillae:
    """Dermal papillae on a DEJ surface: regional minima of depth with enough prominence.

    The prominence (dynamic, Grimaud 1992) of a papilla is the drop from its apex to
    the highest saddle that connects it to a higher apex; the highest apex gets its
    height above the highest saddle joining it to another papilla (above the deepest
    point of the DEJ if it is the only one). It is
    computed exactly, as on the max-tree of ``−depth`` (4-connected), from the graph of
    its watershed basins (:func:`skinoct.morphometry._peaks.regional_maxima`), which
    makes this the 2-D counterpart of :func:`scipy.signal.find_peaks`' prominence and
    equivalent to an h-minima transform with ``h = prominence_um``.
    Apexes on the border of the valid area are not counted. The width is the
    equivalent diameter ``2·sqrt(A/π)`` of the connected region within half the
    prominence of the apex; papillae whose region reaches the border are counted but
    flagged ``truncated`` (left out of the mean height and width).

    References
    ----------
    Grimaud M (1992). New measure of contrast: the dynamics. Proc SPIE 1769:292–305.
    Salembier P, Oliveras A, Garrido L (1998). Antiextensive connected operators for
    image and sequence processing. IEEE Trans Image Process 7:555–570 (max-tree).
    """
    depth = np.asarray(depth, float)
    dy, dx = (float(s) for s in spacing_um)
    valid = np.isfinite(depth)
    area = float(valid.sum()) * dy * dx
    empty = Papillae(np.zeros((0, 2)), np.zeros(0), np.zeros(0), area)
    if valid.sum() < 9:
        return empty
    height = -depth
    floor = float(np.nanmin(height))
    height = np.where(valid, height, floor - 1.0)  # gaps are the lowest level
    maxima = regional_maxima(height, connectivity=1)
    prom_of = prominences(maxima, floor=floor, significant=prominence_um)
    significant = (prom_of >= prominence_um) & (prom_of > 0)
    # not on the image border nor next to a gap
    interior = ndimage.binary_erosion(valid, border_value=0)
    candidates, prom = maxima.index[significant], prom_of[significant]
    inside = interior.ravel()[candidates]
    candidates, prom = candidates[inside], prom[inside]
    positions, heights, widths, truncated = [], [], [], []
    edge = ~interior  # image border, gaps and their rims
    for flat, height_um in zip(candidates.tolist(), prom.tolist(), strict=True):
        iy, ix = np.unravel_index(flat, depth.shape)
        apex = height[iy, ix]
        region, box = _region_above(height, (iy, ix), apex - 0.5 * height_um)
        positions.append((iy * dy, ix * dx))
        heights.append(height_um)
        widths.append(2.0 * np.sqrt(float(np.count_nonzero(region)) * dy * dx / np.pi))
        truncated.append(bool((region & edge[box]).any()))
    return Papillae(
        np.asarray(positions).reshape(-1, 2),
        np.asarray(heights),
        np.asarray(widths),
        area,
        np.asarray(truncated, bool),
    )


def _region_above(height: np.ndarray, apex: tuple[int, int], level: float, start: int = 32):
    """The connected region ``height >= level`` holding ``apex``, in a window around it.

    Labels a window that doubles until the region does not touch its border (except
    where the border is the image's): the same region as labelling the whole image,
    at the cost of the papilla's neighbourhood. Returns the region and its window.
    """
    ny, nx = height.shape
    iy, ix = apex
    half = start
    while True:
        y0, y1 = max(0, iy - half), min(ny, iy + half + 1)
        x0, x1 = max(0, ix - half), min(nx, ix + half + 1)
        box = (slice(y0, y1), slice(x0, x1))
        lab, _ = ndimage.label(height[box] >= level)
        region = lab == lab[iy - y0, ix - x0]
        touches = (
            (y0 > 0 and region[0].any())
            or (y1 < ny and region[-1].any())
            or (x0 > 0 and region[:, 0].any())
            or (x1 < nx and region[:, -1].any())
        )
        if not touches:
            return region, box
        half *= 2
