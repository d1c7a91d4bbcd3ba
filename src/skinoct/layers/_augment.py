"""Training patches and augmentation that keep skin anatomy plausible (MONAI transforms).

Spatial: left-right flips, small rotations (probe tilt), mild zoom (thickness
variation); never vertical flips or large rotations, which would put the dermis
above the epidermis. Intensity: MONAI's random intensity transforms, drawn wide so
the network learns the geometry and the order of the layers rather than one
device's grey levels (domain randomisation, Billot et al., Medical Image Analysis
86:102789, 2023), plus multiplicative speckle. Probabilities and ranges, applied in
this order to the normalised patch (0.5–99.5 percentiles → 0–1):

======================  =====  ===================================================
transform               prob   range
======================  =====  ===================================================
RandAdjustContrastd     0.3    gamma 0.5–2.0
RandHistogramShiftd     0.2    5–12 control points (non-linear intensity remap)
RandScaleIntensityd     0.3    × (1 ± 0.2)
RandShiftIntensityd     0.3    ± 0.1
RandBiasFieldd          0.25   degree-3 polynomial, coefficients 0–0.3 (log gain)
RandGaussianSmoothd     0.25   σ_z, σ_x drawn independently in 0.25–2 px (anisotropic)
RandSpeckleNoised       0.3    Gamma(L, 1/L) multiplicative, L = 3–20 looks
RandGaussianNoised      0.25   s.d. uniform in 0–0.08
RandCoarseDropoutd      0.15   1–3 boxes of 8×8 to 48×32 px filled with 0–0.3
======================  =====  ===================================================

Optionally first (``layer_intensity`` > 0, off by default): ``RandLayerIntensityd``
gives each layer of the patch its own random gain and offset, softened over 2 px at
the boundaries: the SynthSeg idea of contrasts between layers that no device has,
so that no layer ordering of grey levels (e.g. a bright stratum corneum) is learned.

Optionally (``resolution`` > 0, off by default), for images acquired coarser or
blurrier than the model grid: a wide anisotropic ``RandGaussianSmoothd`` (σ_z 1–4 px,
σ_x 0.5–3 px) before the noise, and :func:`RandLowResolutiond` last (the patch is
averaged down by independent factors per axis, 1–5× in z and 1–2.5× in x, and
interpolated back), each with probability ``resolution``: the "PSF / blur" and
"pixel sizes from 0.5 to 5 µm resampled to the model grid" of issue 11, drawn in
training as SynthSeg draws resolution (Billot et al. 2023, section 3.2).

Intensity transforms touch only the image, so the labels stay pixel-aligned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "RandLayerIntensityd",
    "RandLowResolutiond",
    "RandSpeckleNoised",
    "TrainPatches",
    "intensity_transforms",
    "training_transforms",
]


def _speckle_class():
    from monai.transforms import MapTransform, RandomizableTransform

    class _RandSpeckleNoised(RandomizableTransform, MapTransform):
        """Multiplicative speckle: ``image * G`` with ``G ~ Gamma(L, 1/L)`` (mean 1).

        ``L`` (the number of looks) is drawn from ``looks``; fewer looks mean
        stronger speckle, as in coherent imaging.
        """

        def __init__(self, keys, *, prob: float = 0.1, looks: tuple[float, float] = (4.0, 20.0)):
            RandomizableTransform.__init__(self, prob)
            MapTransform.__init__(self, keys)
            if not 0 < looks[0] <= looks[1]:
                raise ValueError(f"looks must be 0 < low <= high, got {looks}")
            self.looks = (float(looks[0]), float(looks[1]))

        def __call__(self, data):
            import torch

            d = dict(data)
            self.randomize(None)
            if not self._do_transform:
                return d
            looks = self.R.uniform(*self.looks)
            for key in self.key_iterator(d):
                img = d[key]
                noise = self.R.gamma(looks, 1.0 / looks, size=tuple(img.shape)).astype(np.float32)
                if isinstance(img, torch.Tensor):
                    d[key] = img * torch.as_tensor(noise, device=img.device)
                else:
                    d[key] = img * noise
            return d

    return _RandSpeckleNoised


def RandSpeckleNoised(keys, *, prob: float = 0.1, looks: tuple[float, float] = (4.0, 20.0)):
    """MONAI dictionary transform adding multiplicative speckle (see the class docstring)."""
    return _speckle_class()(keys, prob=prob, looks=looks)


def _layer_intensity_class():
    from monai.transforms import MapTransform, RandomizableTransform

    class _RandLayerIntensityd(RandomizableTransform, MapTransform):
        """Per-layer random gain and offset: ``image * G + O``, ``G``, ``O`` set per label.

        Each label value present in ``label_key`` (a class index, or 255 for
        indeterminate pixels) draws a gain ``exp(N(0, log_gain_sd))`` and an offset
        ``N(0, offset_sd)``; the two maps are smoothed with a Gaussian of ``soften_px``
        so the change of contrast at a boundary is not a perfect label-aligned step.
        Domain randomisation in the spirit of SynthSeg (Billot et al., Medical Image
        Analysis 86:102789, 2023), applied to real-looking images rather than to label
        maps.
        """

        def __init__(self, keys, *, label_key: str = "label", prob: float = 0.3,
                     log_gain_sd: float = 0.4, offset_sd: float = 0.08,
                     soften_px: float = 2.0):  # fmt: skip
            RandomizableTransform.__init__(self, prob)
            MapTransform.__init__(self, keys)
            if log_gain_sd < 0 or offset_sd < 0 or soften_px < 0:
                raise ValueError("log_gain_sd, offset_sd and soften_px must be >= 0")
            self.label_key = label_key
            self.log_gain_sd, self.offset_sd = float(log_gain_sd), float(offset_sd)
            self.soften_px = float(soften_px)

        def __call__(self, data):
            import torch
            from scipy.ndimage import gaussian_filter

            d = dict(data)
            self.randomize(None)
            if not self._do_transform:
                return d
            label = np.rint(np.asarray(_plain(d[self.label_key]))).astype(np.int64)
            values, index = np.unique(label, return_inverse=True)
            gains = np.exp(self.R.normal(0.0, self.log_gain_sd, values.size))
            offsets = self.R.normal(0.0, self.offset_sd, values.size)
            maps = []
            for per_value in (gains, offsets):
                m = per_value[index].reshape(label.shape).astype(np.float32)
                if self.soften_px > 0:  # spatial axes only (the first is the channel)
                    m = gaussian_filter(m, (0,) + (self.soften_px,) * (m.ndim - 1))
                maps.append(m)
            for key in self.key_iterator(d):
                img = d[key]
                if isinstance(img, torch.Tensor):
                    g, o = (torch.as_tensor(m, device=img.device) for m in maps)
                    d[key] = img * g + o
                else:
                    d[key] = img * maps[0] + maps[1]
            return d

    return _RandLayerIntensityd


def _low_resolution_class():
    from monai.transforms import MapTransform, RandomizableTransform

    class _RandLowResolutiond(RandomizableTransform, MapTransform):
        """Simulated coarse pixels: average down by a random factor per axis, then
        interpolate back (bilinear) to the patch's shape.

        ``factors`` holds one ``(low, high)`` range of the pixel-size ratio per spatial
        axis (1: unchanged); each is drawn log-uniformly. Area averaging is the
        detector integrating over a larger pixel; the bilinear interpolation is
        :func:`skinoct.layers.segment_section` resampling it to the model grid. Like
        MONAI's ``RandSimulateLowResolutiond``, but anisotropic (OCT pixels are).
        """

        def __init__(
            self,
            keys,
            *,
            prob: float = 0.1,
            factors: Sequence[tuple[float, float]] = ((1.0, 5.0), (1.0, 2.5)),
        ):
            RandomizableTransform.__init__(self, prob)
            MapTransform.__init__(self, keys)
            self.factors = tuple((float(lo), float(hi)) for lo, hi in factors)
            if any(not 1.0 <= lo <= hi for lo, hi in self.factors):
                raise ValueError(f"factors must be ranges 1 <= low <= high, got {factors}")

        def __call__(self, data):
            import torch.nn.functional as F

            d = dict(data)
            self.randomize(None)
            if not self._do_transform:
                return d
            drawn = [math.exp(self.R.uniform(math.log(a), math.log(b))) for a, b in self.factors]
            for key in self.key_iterator(d):
                img = _plain(d[key]).float()
                shape = tuple(img.shape[1:])
                small = tuple(max(2, round(n / f)) for n, f in zip(shape, drawn, strict=True))
                x = F.interpolate(img[None], size=small, mode="area")
                d[key] = F.interpolate(x, size=shape, mode="bilinear", align_corners=False)[0]
            return d

    return _RandLowResolutiond


def RandLowResolutiond(keys, **kwargs):
    """MONAI dictionary transform: simulated coarse pixels (see the class docstring)."""
    return _low_resolution_class()(keys, **kwargs)


def RandLayerIntensityd(keys, **kwargs):
    """MONAI dictionary transform: per-layer random gain and offset (see the class docstring)."""
    return _layer_intensity_class()(keys, **kwargs)


def training_transforms(
    patch: Sequence[int],
    *,
    max_rotation_deg: float = 8.0,
    layer_intensity: float = 0.0,
    resolution: float = 0.0,
):
    """MONAI ``Compose`` turning a ``{"image", "label"}`` pair into one augmented patch.

    Inputs are ``(1, z, x)`` arrays at least ``margin_shape(patch)`` large; the
    output patch is ``patch`` pixels. ``layer_intensity`` is the probability of
    :func:`RandLayerIntensityd`, ``resolution`` that of the wide blur and of
    :func:`RandLowResolutiond` (0: not used; module docstring).
    """
    from monai import transforms as T

    patch = tuple(int(p) for p in patch)
    big = margin_shape(patch)
    keys = ("image", "label")
    return T.Compose(
        [
            T.RandSpatialCropd(keys, roi_size=big, random_size=False),
            T.RandFlipd(keys, prob=0.5, spatial_axis=1),  # left-right only
            T.RandRotated(
                keys,
                range_x=math.radians(max_rotation_deg),
                prob=0.5,
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            T.RandZoomd(
                keys,
                prob=0.3,
                min_zoom=0.85,
                max_zoom=1.15,
                mode=("bilinear", "nearest"),
                padding_mode="edge",
            ),
            T.CenterSpatialCropd(keys, roi_size=patch),
            *([RandLayerIntensityd("image", prob=layer_intensity)] if layer_intensity else []),
            *intensity_transforms(resolution=resolution),
        ]
    )


def intensity_transforms(*, resolution: float = 0.0) -> list:
    """The random intensity transforms of training (table in the module docstring);
    with ``resolution`` > 0 the wide blur and the coarse pixels too."""
    from monai import transforms as T

    wide_blur, coarse = [], []
    if resolution:
        wide_blur = [T.RandGaussianSmoothd("image", sigma_x=(1.0, 4.0), sigma_y=(0.5, 3.0),
                                           prob=resolution)]  # fmt: skip
        coarse = [RandLowResolutiond("image", prob=resolution)]
    return [
        *wide_blur,
        T.RandAdjustContrastd("image", prob=0.3, gamma=(0.5, 2.0)),
        T.RandHistogramShiftd("image", num_control_points=(5, 12), prob=0.2),
        T.RandScaleIntensityd("image", factors=0.2, prob=0.3),
        T.RandShiftIntensityd("image", offsets=0.1, prob=0.3),
        T.RandBiasFieldd("image", degree=3, coeff_range=(0.0, 0.3), prob=0.25),
        T.RandGaussianSmoothd("image", sigma_x=(0.25, 2.0), sigma_y=(0.25, 2.0), prob=0.25),
        RandSpeckleNoised("image", prob=0.3, looks=(3.0, 20.0)),
        T.RandGaussianNoised("image", prob=0.25, std=0.08),
        T.RandCoarseDropoutd(
            "image", holes=1, max_holes=3, spatial_size=(8, 8), max_spatial_size=(48, 32),
            fill_value=(0.0, 0.3), prob=0.15,
        ),
        *coarse,
    ]


def margin_shape(patch: Sequence[int]) -> tuple[int, int]:
    """Crop taken before rotation/zoom so the final patch has no empty corners."""
    return tuple(math.ceil(p * 1.25) for p in patch)


class TrainPatches:
    """A map-style dataset of ``length`` augmented patches drawn from ``sections``.

    Item ``i`` comes from section ``order[i]`` (fixed by ``seed``), so runs with the
    same seed see the same sections in the same order; the random augmentation
    state is seeded by MONAI's DataLoader per worker. With ``sampling="band"`` the
    region each patch is cut from is centred on the section's tissue band
    (:func:`skinoct.layers._sampling.band_crop`, seeded by ``(seed, i)``); with
    ``"uniform"`` it lies anywhere.
    """

    def __init__(
        self,
        sections,
        *,
        patch: Sequence[int],
        length: int,
        seed: int,
        sampling: str = "uniform",
        air_index: int | None = 0,
        dermis_index: int | None = None,
        layer_intensity: float = 0.0,
        resolution: float = 0.0,
    ) -> None:
        from skinoct.layers._sampling import SAMPLING_MODES, tissue_band

        if sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
        self.patch = tuple(int(p) for p in patch)
        self.big = margin_shape(self.patch)
        self.images = [_pad_to(s.image, self.big) for s in sections]
        self.targets = [_pad_to(s.target, self.big) for s in sections]
        self.sampling = sampling
        self.bands = None
        if sampling == "band":
            self.bands = [
                tissue_band(s.target, air_index=air_index, dermis_index=dermis_index)
                for s in sections
            ]
        self.seed = int(seed)
        rng = np.random.default_rng(seed)
        self.order = rng.integers(0, len(sections), size=int(length))
        self.transform = training_transforms(
            self.patch, layer_intensity=layer_intensity, resolution=resolution
        )
        self.transform.set_random_state(seed=int(seed) % (2**32))

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        from skinoct.layers._sampling import band_crop

        k = int(self.order[i])
        image, target = self.images[k], self.targets[k]
        if self.bands is not None:
            rng = np.random.default_rng((self.seed, int(i)))
            image, target = band_crop(image, target, self.big, rng, band=self.bands[k])
        out = self.transform({"image": image[None], "label": target[None].astype(np.float32)})
        image = _plain(out["image"]).float()
        label = _plain(out["label"]).round().long()
        return image, label


def _plain(x):
    import torch

    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return torch.as_tensor(x)


def _pad_to(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Mirror-pad a 2-D array (bottom/right) up to at least ``shape``."""
    pz = max(0, int(shape[0]) - array.shape[0])
    px = max(0, int(shape[1]) - array.shape[1])
    if pz == 0 and px == 0:
        return array
    return np.pad(array, ((0, pz), (0, px)), mode="symmetric")
