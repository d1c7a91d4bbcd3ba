"""Gaussian random fields by spectral synthesis, on 2-D planes or on single rows.

Every texture of the simulator starts from stationary Gaussian random fields made
by filtering white noise in the Fourier domain (Lang & Potthoff 2011, "Fast
simulation of Gaussian random fields", Monte Carlo Methods Appl. 17:195–214).
A *lateral grid* is either a plane ``(ny, nx)`` (volumes, en-face images) or a
single row ``(nx,)`` (vertical sections). A row is sampled with the *marginal*
spectrum of the 2-D field (the 2-D spectrum summed over ``ky``), so a vertical
section has exactly the statistics of a row cut out of a volume: the same texture
model serves sections, en-face images and volumes.

Complex white noise filtered by a point-symmetric spectrum gives two uncorrelated
real fields per inverse FFT (real and imaginary parts), which halves the cost.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["GaussianSpectrum", "LateralGrid", "RingSpectrum", "white_noise"]

_UNIFORM_SD = math.sqrt((256.0**2 - 1.0) / 12.0)


def white_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance white noise (float32) from uniform random bytes.

    Filtering sums many independent values, so the fields are Gaussian by the
    central limit theorem while their second-order statistics are exact; random
    bytes are ~4× cheaper than normal variates.
    """
    n = int(np.prod(shape))
    out = np.frombuffer(rng.bytes(n), dtype=np.int8).astype(np.float32).reshape(shape)
    out += np.float32(0.5)
    out *= np.float32(1.0 / _UNIFORM_SD)
    return out


@dataclass(frozen=True)
class RingSpectrum:
    """Power spectrum concentrated on an elliptical ring of radius ``1 / period_um``.

    The zero-level set of such a field is a connected web of lines whose mesh
    size is about half the period; with ``anisotropy > 1`` the structures are
    elongated ``anisotropy`` times along ``angle_rad`` (measured from the x axis).
    """

    period_um: float
    bandwidth: float = 0.3  #: standard deviation of |k| relative to the ring radius
    anisotropy: float = 1.0
    angle_rad: float = 0.0

    def ky_support(self) -> tuple[float, float]:
        """``(kmax, step)``: where the power lies and how finely to sample it."""
        k0 = 1.0 / self.period_um
        return k0 * (1.0 + 4.5 * self.bandwidth), self.bandwidth * k0 / (4.0 * self.anisotropy)

    def __call__(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        k0 = 1.0 / self.period_um
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        along = kx * c + ky * s  # frequency along the elongation direction
        across = -kx * s + ky * c
        k = np.sqrt((along * self.anisotropy) ** 2 + across**2)
        return np.exp(-0.5 * ((k - k0) / (self.bandwidth * k0)) ** 2)


@dataclass(frozen=True)
class GaussianSpectrum:
    """Low-pass spectrum: white noise smoothed by a Gaussian of s.d. ``length_um``."""

    length_um: float

    def ky_support(self) -> tuple[float, float]:
        """``(kmax, step)``: where the power lies and how finely to sample it."""
        scale = 1.0 / (2.0 * math.pi * self.length_um)
        return 4.5 * scale, scale / 4.0

    def __call__(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        return np.exp(-2.0 * (math.pi * self.length_um) ** 2 * (kx**2 + ky**2))


@functools.lru_cache(maxsize=128)
def _amplitude(shape: tuple[int, ...], spacing: tuple[float, ...], spectrum) -> np.ndarray:
    """Fourier amplitude that turns complex white noise into unit-variance fields."""
    if len(shape) == 2:
        ky = scipy.fft.fftfreq(shape[0], spacing[0])[:, None]
        kx = scipy.fft.fftfreq(shape[1], spacing[1])[None, :]
        power = spectrum(ky, kx)
    else:  # marginal spectrum of a row: integrate over ky where the power lies
        kmax, step = spectrum.ky_support()
        kmax = min(kmax, 0.5 / spacing[-1])
        n = math.ceil(kmax / step)
        ky = (np.arange(-n, n + 1) * (kmax / max(n, 1)))[:, None]
        kx = scipy.fft.fftfreq(shape[-1], spacing[-1])[None, :]
        power = spectrum(ky, kx).sum(axis=0)
    total = float(power.sum())
    if not total > 0:  # pragma: no cover - spectra used here are never empty
        raise ValueError("spectrum has no power on this grid")
    # Re(ifft(Z * A)) has variance sum(A^2) / N^2 for Z with unit-variance parts.
    n = float(np.prod(shape))
    amp = np.sqrt(power / total) * n
    amp.flags.writeable = False
    return amp.astype(np.float32)


@dataclass(frozen=True)
class LateralGrid:
    """The lateral sampling of a rendering: a row ``(nx,)`` or a plane ``(ny, nx)``.

    Parameters
    ----------
    shape : tuple of int
        ``(nx,)`` for a vertical section, ``(ny, nx)`` for a plane.
    spacing_um : tuple of float
        Pixel size per lateral axis in µm, same length as ``shape``.
    y_um : float
        For a row: the ``y`` position of the section in the (virtual) volume.
    """

    shape: tuple[int, ...]
    spacing_um: tuple[float, ...]
    y_um: float = 0.0

    @property
    def is_row(self) -> bool:
        return len(self.shape) == 1

    def coords(self, dtype=np.float32) -> tuple[np.ndarray | float, np.ndarray]:
        """``(y, x)`` coordinates in µm, broadcastable to ``shape``."""
        x = np.arange(self.shape[-1], dtype=dtype) * dtype(self.spacing_um[-1])
        if self.is_row:
            return dtype(self.y_um), x
        y = np.arange(self.shape[0], dtype=dtype) * dtype(self.spacing_um[0])
        return y[:, None], x[None, :]

    def centred(self) -> tuple[np.ndarray | float, np.ndarray]:
        """``(y, x)`` in µm (float64) relative to the centre of the field."""
        y, x = self.coords(np.float64)
        xc = (self.shape[-1] - 1) * self.spacing_um[-1] / 2
        if self.is_row:
            return 0.0, x - xc
        yc = (self.shape[0] - 1) * self.spacing_um[0] / 2
        return y - yc, x - xc

    def field_pairs(
        self, rng: np.random.Generator, spectrum, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``2 n`` independent unit-variance fields with power spectrum ``spectrum``.

        Returns two float32 arrays of shape ``(n, *shape)`` (strided views of one
        complex array).
        """
        spacing = self.spacing_um
        amp = _amplitude(tuple(self.shape), tuple(spacing), spectrum)
        z = white_noise(rng, (n, *self.shape, 2)).view(np.complex64)[..., 0]
        z *= amp
        axes = (-1,) if self.is_row else (-2, -1)
        out = scipy.fft.ifftn(z, axes=axes, overwrite_x=True)
        return out.real, out.imag

    def field(self, rng: np.random.Generator, spectrum) -> np.ndarray:
        """One unit-variance field of shape ``shape`` (float32)."""
        a, _ = self.field_pairs(rng, spectrum, 1)
        return np.ascontiguousarray(a[0])
