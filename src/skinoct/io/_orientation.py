"""Orientation sanity of vertical sections and volumes: air/gel above the tissue.

In LC-OCT (and OCT) the beam enters from above: the first rows of a vertical section
(``'zx'``) or the first planes of a volume (``'zyx'``) hold air or gel, which is dark,
then the bright entrance of the stratum corneum, then a signal that fades with depth
(Beer–Lambert attenuation; Dubois et al. 2018, seed 002 §2.1). Seen as a mean-intensity
profile along each axis, only the depth axis starts dark and peaks early; lateral axes
are flat. A section saved as x × z, or a volume saved as x, y, z, has this profile
along another axis; an upside-down image has it reversed.

The check is deliberately conservative: it refuses an image only when the declared
depth axis does *not* start dark and peak early while another axis (or the reversed
depth axis) clearly does. An image cut below the surface, without air, or with a flat
or noisy profile passes. Users override it by giving the axes explicitly
(``--axes zx`` / ``--axes zyx`` on the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skinoct.errors import InputError

__all__ = ["OrientationVerdict", "check_orientation", "orientation_verdict"]

_MAX_SAMPLES = {2: 160, 3: 96}  # pixels per axis used for the profiles (strided subsample)
_DEPTH_OK = 0.35  # start contrast that is enough for the declared depth axis
_STRONG = 0.6  # start contrast another axis needs before the image is refused
_MARGIN = 0.3  # ... and by how much it must beat the declared depth axis
_EDGE_RATIO = 2.0  # strong edges must face along that axis this much more than along z


@dataclass(frozen=True)
class OrientationVerdict:
    """What the mean-intensity profiles say about an image's orientation.

    Attributes
    ----------
    ok : bool
        False only when another axis (or the reversed depth axis) looks like depth.
    depth_axis : int or None
        The axis that looks like depth (air first, early peak), None when none does.
    flipped : bool
        The depth axis looks like depth read bottom-up (air below the tissue).
    contrast : tuple of float
        Per axis, how dark its start is relative to its peak (0 flat, 1 air-dark).
    message : str
        Why the image is refused (empty when ``ok``).
    """

    ok: bool
    depth_axis: int | None
    flipped: bool
    contrast: tuple[float, ...]
    message: str = ""


def orientation_verdict(data: np.ndarray, *, axes: str, spacing_um=None) -> OrientationVerdict:
    """Judge whether a ``'zx'`` section or ``'zyx'`` volume has depth along axis 0.

    Parameters
    ----------
    data : ndarray
        Intensities (any real dtype; memory maps are read strided, not in full).
    axes : {'zx', 'zyx'}
        The declared axes.
    spacing_um : sequence of float, optional
        Pixel size per axis, used to report extents in the message.

    Returns
    -------
    OrientationVerdict
    """
    if axes not in ("zx", "zyx") or data.ndim != len(axes):
        raise ValueError(f"orientation is judged for 'zx' or 'zyx' data, got {axes!r} "
                         f"with shape {data.shape}")  # fmt: skip
    steps = tuple(max(1, -(-n // _MAX_SAMPLES[data.ndim])) for n in data.shape)
    sample = np.asarray(data[tuple(slice(None, None, s) for s in steps)], dtype=np.float64)
    floor = float(np.percentile(sample, 1))
    forward, peaks = [], []
    for axis in range(sample.ndim):
        others = tuple(a for a in range(sample.ndim) if a != axis)
        profile = _smooth(sample.mean(axis=others))
        forward.append(_start_contrast(profile, floor))
        peaks.append(_peak_position(profile))
    edge = _edge_direction(sample)
    contrast = tuple(round(c, 3) for c in forward)
    if forward[0] >= _DEPTH_OK and peaks[0] <= 0.5:
        return OrientationVerdict(True, 0, False, contrast)
    # Swapped: another axis starts dark and peaks early, and the strong edges (the skin
    # surface) face along it rather than along axis 0.
    candidates = [
        a for a in range(1, sample.ndim)
        if forward[a] >= max(_STRONG, forward[0] + _MARGIN) and peaks[a] <= 0.5
        and abs(edge[a]) >= _EDGE_RATIO * abs(edge[0])
    ]  # fmt: skip
    if candidates:
        axis = max(candidates, key=lambda a: forward[a])
        return OrientationVerdict(False, axis, False, contrast,
                                  _swap_message(axis, data.shape, axes, spacing_um))  # fmt: skip
    # Upside down: brightest signal low, the dark end is the top one reversed, and the
    # strong edges go from bright to dark downwards.
    depth_profile = _smooth(sample.mean(axis=tuple(range(1, sample.ndim))))
    reverse = _start_contrast(depth_profile[::-1], floor)
    if reverse >= _STRONG and peaks[0] > 0.5 and edge[0] <= -0.5:
        message = (
            "the air/gel lies below the tissue (dark last rows, brightest signal in the lower "
            "half, edges bright above dark): the image looks upside down; flip it along depth"
        )
        return OrientationVerdict(False, 0, True, contrast, message)
    return OrientationVerdict(True, None, False, contrast)


def check_orientation(image) -> None:
    """Refuse an :class:`~skinoct.io.Image` whose depth axis is implausible.

    En-face images (``'yx'``) are not checked.

    Raises
    ------
    InputError
        Naming the file, the axis that looks like depth and the ``--axes`` to use.
    """
    if image.axes not in ("zx", "zyx"):
        return
    verdict = orientation_verdict(image.data, axes=image.axes, spacing_um=image.spacing_um)
    if not verdict.ok:
        override = f"--axes {image.axes} (axes={image.axes!r} in Python) skips this check"
        raise InputError(f"{verdict.message}; {override}", path=image.path)


def _edge_direction(sample: np.ndarray) -> np.ndarray:
    """Mean gradient direction of the strongest 1 % edges (dark → bright is positive)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(sample, 2.0)
    grads = np.gradient(smooth) if smooth.ndim > 1 else [np.gradient(smooth)]
    magnitude = np.sqrt(sum(g * g for g in grads))
    strong = magnitude >= np.quantile(magnitude, 0.99)
    total = float(magnitude[strong].sum())
    if not total > 0:
        return np.zeros(sample.ndim)
    return np.array([float(g[strong].sum()) / total for g in grads])


def _smooth(profile: np.ndarray) -> np.ndarray:
    width = max(1, profile.size // 40)
    if width == 1:
        return profile
    kernel = np.ones(width) / width
    padded = np.pad(profile, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _start_contrast(profile: np.ndarray, floor: float) -> float:
    """How much darker the first 5 % are than the peak, relative to the dark floor."""
    k = max(1, profile.size // 20)
    peak = float(profile.max())
    span = peak - min(floor, float(profile.min()))
    if not span > 0:
        return 0.0
    return float(np.clip((peak - float(profile[:k].mean())) / span, 0.0, 1.0))


def _peak_position(profile: np.ndarray) -> float:
    return float(np.argmax(profile)) / max(1, profile.size - 1)


def _swap_message(axis: int, shape, axes: str, spacing_um) -> str:
    ndim = len(shape)
    if ndim == 2:
        stored, suggestion = "x × z (lateral × depth)", "xz"
    else:
        order = ["y", "x"]
        letters = [order.pop(0) if a != axis else "z" for a in range(ndim)]
        # an x, y, z volume is a full transpose: keep the lateral pair reversed too
        suggestion = "xyz" if axis == 2 else "".join(letters)
        stored = " × ".join(suggestion)
    extent = ""
    if spacing_um is not None:
        sizes = (f"{n * s:g}" for n, s in zip(shape, spacing_um, strict=True))
        extent = " (extents " + " × ".join(sizes) + " µm)"
    return (
        f"the depth axis looks wrong: air/gel and the bright skin entrance are along axis "
        f"{axis}, not along axis 0 as {axes!r} expects{extent}; the file looks stored as "
        f"{stored}: read it with --axes {suggestion} (axes={suggestion!r} in Python)"
    )
