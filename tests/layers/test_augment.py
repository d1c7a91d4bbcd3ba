import numpy as np
import pytest
import torch
from _layers_synthetic import synthetic_section

from skinoct.layers._augment import RandSpeckleNoised, TrainPatches
from skinoct.layers._data import PreparedSection


def _sections(n=3, shape=(80, 120)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image, labels = synthetic_section(rng, shape, amplitude=3.0, wavelength=60.0)
        out.append(PreparedSection(str(i), (image / image.max()).astype(np.float32), labels))
    return out


def test_patches_have_the_patch_shape_and_types():
    patches = TrainPatches(_sections(), patch=(32, 48), length=5, seed=0)
    assert len(patches) == 5
    image, label = patches[0]
    assert image.shape == label.shape == (1, 32, 48)
    assert image.dtype == torch.float32 and label.dtype == torch.int64
    assert set(torch.unique(label).tolist()) <= {0, 1, 2, 3}


def test_sections_smaller_than_the_patch_are_mirror_padded():
    patches = TrainPatches(_sections(1, shape=(20, 30)), patch=(32, 32), length=2, seed=0)
    image, label = patches[1]
    assert image.shape == (1, 32, 32) and torch.isfinite(image).all()


def test_same_seed_same_patches_other_seed_other_patches():
    a = TrainPatches(_sections(), patch=(32, 32), length=4, seed=7)
    b = TrainPatches(_sections(), patch=(32, 32), length=4, seed=7)
    c = TrainPatches(_sections(), patch=(32, 32), length=4, seed=8)
    xa = torch.stack([a[i][0] for i in range(4)])
    xb = torch.stack([b[i][0] for i in range(4)])
    xc = torch.stack([c[i][0] for i in range(4)])
    torch.testing.assert_close(xa, xb)
    assert not torch.allclose(xa, xc)


def test_augmentation_keeps_the_layer_order():
    """No vertical flips, only small tilts: down every column air <= SC <= epidermis <= dermis."""
    patches = TrainPatches(_sections(), patch=(64, 64), length=60, seed=3)
    for i in range(len(patches)):
        _, label = patches[i]
        steps = np.diff(label[0].numpy(), axis=0)
        assert (steps >= 0).all(), f"patch {i}: a layer lies above the one that should cover it"


def test_speckle_is_multiplicative_with_unit_mean():
    transform = RandSpeckleNoised("image", prob=1.0, looks=(10.0, 10.0))
    transform.set_random_state(0)
    image = np.full((1, 200, 200), 2.0, np.float32)
    out = transform({"image": image})["image"]
    assert out.mean() == pytest.approx(2.0, rel=0.02)
    # Gamma(L, 1/L) noise: relative sd 1/sqrt(L).
    assert (out / 2.0).std() == pytest.approx(1 / np.sqrt(10), rel=0.05)
    zero = transform({"image": np.zeros((1, 8, 8), np.float32)})["image"]
    assert np.all(zero == 0)  # dark air stays dark


def test_speckle_rejects_bad_looks():
    with pytest.raises(ValueError, match="looks"):
        RandSpeckleNoised("image", looks=(0.0, 2.0))


def test_intensity_transforms_are_monai_and_leave_the_labels_alone():
    from monai.transforms import MapTransform

    from skinoct.layers._augment import intensity_transforms

    transforms = intensity_transforms()
    names = {type(t).__name__ for t in transforms}
    for expected in ("RandAdjustContrastd", "RandHistogramShiftd", "RandGaussianSmoothd",
                     "RandBiasFieldd", "RandGaussianNoised", "RandCoarseDropoutd"):  # fmt: skip
        assert expected in names
    rng = np.random.default_rng(1)
    image = rng.uniform(0.0, 1.0, (1, 48, 64)).astype(np.float32)
    label = np.repeat(np.arange(4), 12)[None, :, None].repeat(64, axis=2).astype(np.float32)
    for t in transforms:
        assert isinstance(t, MapTransform)
        t.prob = 1.0  # force every transform to fire
        t.set_random_state(3)
        out = t({"image": image.copy(), "label": label.copy()})
        np.testing.assert_array_equal(np.asarray(out["label"]), label)
        result = np.asarray(out["image"])
        assert result.shape == image.shape and np.isfinite(result).all(), type(t).__name__


def test_augmented_patches_keep_image_and_labels_aligned():
    """The image of each section is its label map (0, 1/3, 2/3, 1) plus mild texture; after
    spatial and intensity augmentation, dermis pixels stay brighter than the pixels
    labelled above the dermis in nearly every patch (monotone intensity maps, mild
    noise), i.e. the label moved with the image."""
    rng = np.random.default_rng(0)
    sections = []
    for i in range(3):
        _, labels = synthetic_section(rng, (120, 160), amplitude=3.0, wavelength=60.0)
        image = labels / 3.0 + rng.normal(0.0, 0.02, labels.shape)
        sections.append(PreparedSection(str(i), image.astype(np.float32), labels))
    # band sampling (the training default) puts air and dermis in most patches
    patches = TrainPatches(
        sections, patch=(64, 64), length=40, seed=5, sampling="band", dermis_index=3
    )
    good = total = 0
    for i in range(len(patches)):
        image, label = patches[i]
        assert torch.isfinite(image).all()
        above, dermis = image[label <= 2], image[label == 3]
        if above.numel() > 50 and dermis.numel() > 50:
            total += 1
            good += int(dermis.median() > above.median())
    assert total >= 10 and good >= 0.9 * total


def test_layer_intensity_gives_each_layer_its_own_gain_and_offset():
    """Flat image, three layers: inside each layer (away from the 2 px softening) the
    result is gain·x + offset with one (gain, offset) per layer, and labels are untouched."""
    from skinoct.layers._augment import RandLayerIntensityd

    label = np.zeros((1, 60, 20), np.float32)
    label[:, 20:40], label[:, 40:] = 1, 2
    image = np.full((1, 60, 20), 0.5, np.float32)
    t = RandLayerIntensityd("image", prob=1.0, log_gain_sd=0.5, offset_sd=0.1)
    t.set_random_state(seed=3)
    out = t({"image": image, "label": label})
    np.testing.assert_array_equal(out["label"], label)
    res = np.asarray(out["image"])[0]
    cores = [res[2:12], res[28:32], res[48:58]]  # ≥ 8 px (4 σ) from a boundary
    levels = [c.mean() for c in cores]
    for c, level in zip(cores, levels, strict=True):
        np.testing.assert_allclose(c, level, atol=1e-4)  # one gain and offset per layer
    assert len({round(float(v), 3) for v in levels}) == 3
    # softened: the change across a boundary spans several rows, not one step
    column = res[:, 5]
    assert np.count_nonzero(np.abs(np.diff(column[10:30])) > 1e-4) >= 4


def test_layer_intensity_off_and_in_training_transforms():
    from skinoct.layers._augment import RandLayerIntensityd, training_transforms

    t = RandLayerIntensityd("image", prob=0.0)
    image = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    out = t({"image": image, "label": np.zeros((1, 8, 8), np.float32)})
    np.testing.assert_array_equal(out["image"], image)
    names = [type(x).__name__ for x in training_transforms((32, 32)).transforms]
    assert "_RandLayerIntensityd" not in names
    names = [
        type(x).__name__ for x in training_transforms((32, 32), layer_intensity=0.3).transforms
    ]
    assert "_RandLayerIntensityd" in names
    with pytest.raises(ValueError, match=">= 0"):
        RandLayerIntensityd("image", log_gain_sd=-1.0)


def test_train_config_checks_layer_intensity():
    from skinoct.errors import InputError
    from skinoct.layers import TrainConfig

    assert TrainConfig(layer_intensity=0.3).to_dict()["layer_intensity"] == 0.3
    with pytest.raises(InputError, match="layer_intensity"):
        TrainConfig(layer_intensity=1.5)


def test_low_resolution_averages_over_the_drawn_pixel_size():
    """Analytic cases: a row pattern of period 2 averaged over 2 rows is flat (0.5); a
    pattern along the unchanged axis is kept exactly; a constant image stays constant;
    the labels are not touched."""
    from skinoct.layers._augment import RandLowResolutiond

    stripes = np.zeros((1, 64, 32), np.float32)
    stripes[:, ::2] = 1.0  # alternate rows
    label = np.repeat(np.arange(4), 16)[None, :, None].repeat(32, axis=2).astype(np.float32)
    t = RandLowResolutiond("image", prob=1.0, factors=((2.0, 2.0), (1.0, 1.0)))
    t.set_random_state(0)
    out = t({"image": stripes, "label": label})
    np.testing.assert_allclose(np.asarray(out["image"]), 0.5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out["label"]), label)
    # columns alternate instead: z-only coarsening leaves them as they are
    cols = np.zeros((1, 64, 32), np.float32)
    cols[..., ::2] = 1.0
    np.testing.assert_allclose(np.asarray(t({"image": cols})["image"]), cols, atol=1e-6)
    # any factors: the mean and a constant are kept, the shape too
    wide = RandLowResolutiond("image", prob=1.0)
    wide.set_random_state(1)
    flat = np.full((1, 50, 70), 0.3, np.float32)
    res = np.asarray(wide({"image": flat})["image"])
    assert res.shape == flat.shape
    np.testing.assert_allclose(res, 0.3, atol=1e-6)
    with pytest.raises(ValueError, match="factors"):
        RandLowResolutiond("image", factors=((0.5, 2.0), (1.0, 1.0)))


def test_resolution_option_adds_the_wide_blur_and_coarse_pixels():
    from skinoct.errors import InputError
    from skinoct.layers import TrainConfig
    from skinoct.layers._augment import intensity_transforms, training_transforms
    from skinoct.layers._sampling import BandSampler

    assert "_RandLowResolutiond" not in {type(t).__name__ for t in intensity_transforms()}
    names = [type(t).__name__ for t in intensity_transforms(resolution=0.4)]
    assert names[-1] == "_RandLowResolutiond"  # coarse pixels last: noise is averaged too
    assert names.count("RandGaussianSmoothd") == 2
    assert names.index("RandGaussianSmoothd") < names.index("RandGaussianNoised")
    compose = training_transforms((32, 32), resolution=0.4)
    assert "_RandLowResolutiond" in [type(t).__name__ for t in compose.transforms]
    # the option reaches the patches of an epoch
    patches = BandSampler((0, 1, 2, 3), resolution=0.4)(_sections(), patch=(32, 48),
                                                        length=2, seed=0)  # fmt: skip
    assert "_RandLowResolutiond" in [type(t).__name__ for t in patches.transform.transforms]
    assert TrainConfig(resolution=0.4).to_dict()["resolution"] == 0.4
    with pytest.raises(InputError, match="resolution"):
        TrainConfig(resolution=-0.1)
