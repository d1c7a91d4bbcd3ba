"""Dataset fingerprint -> training recipe rules (skinoct.layers._recipe)."""

from __future__ import annotations

import numpy as np
import pytest

from skinoct.layers._recipe import DatasetFingerprint, dataset_fingerprint, plan_recipe


def _mask(n_z, n_x, surface, dej):
    m = np.zeros((n_z, n_x), np.uint8)
    m[surface:] = 2
    m[dej:] = 3
    return m


def _fp(n_sections=100, n_subjects=20, shape=(512, 600), band=90.0):
    return DatasetFingerprint(n_sections, n_subjects, shape, band, (0, 1, 2, 3), (1.0, 2.0))


def test_fingerprint_measures_shape_band_and_subjects():
    targets = [_mask(300, 200, 40, 100), _mask(320, 240, 50, 90), _mask(310, 220, 30, 130)]
    fp = dataset_fingerprint(
        targets, subjects=["a", "a", "b"], label_values=(0, 1, 2, 3), model_spacing_um=(1, 2)
    )
    assert fp.n_sections == 3 and fp.n_subjects == 2
    assert fp.median_shape == (310, 220)
    # band heights per column: 61, 41, 101 rows -> 90th percentile over all columns
    heights = np.concatenate([np.full(200, 61), np.full(240, 41), np.full(220, 101)])
    assert fp.band_rows_p90 == pytest.approx(np.percentile(heights, 90))


def test_patch_height_covers_band_plus_context_rounded_to_divisor():
    r = plan_recipe(_fp(band=90.0), divisor=16)
    assert r.patch[0] == 224  # 90 + 128 = 218 -> 224
    assert r.patch[0] % 16 == 0
    assert plan_recipe(_fp(band=5.0)).patch[0] == 144  # 5 + 128 = 133 -> 144
    assert plan_recipe(_fp(band=900.0)).patch[0] == 384  # capped
    assert plan_recipe(_fp(band=40.0, shape=(100, 600))).patch[0] == 112  # section height


def test_narrow_sections_get_full_width_strips_wide_ones_512():
    assert plan_recipe(_fp(shape=(512, 300))).patch[1] == 304
    assert plan_recipe(_fp(shape=(512, 1200))).patch[1] == 512


def test_batch_fills_pixel_budget_and_gpu_doubles_it():
    cpu = plan_recipe(_fp(band=90.0, shape=(512, 1200)))
    gpu = plan_recipe(_fp(band=90.0, shape=(512, 1200)), gpu=True)
    assert cpu.batch_size == (8 * 256 * 256) // (224 * 512)
    assert gpu.batch_size == (16 * 256 * 256) // (224 * 512)
    assert gpu.channels[0] > cpu.channels[0]


def test_patches_per_section_target_steps_per_epoch():
    small = plan_recipe(_fp(n_sections=10))
    large = plan_recipe(_fp(n_sections=500))
    assert small.patches_per_section == 8  # capped
    assert large.patches_per_section == 1


def test_folds_follow_subjects_and_budget():
    assert plan_recipe(_fp(n_subjects=20)).folds == 5
    assert plan_recipe(_fp(n_subjects=3)).folds == 0
    assert plan_recipe(_fp(n_subjects=20), time_budget_s=600).folds == 1
    assert plan_recipe(_fp(n_subjects=1), time_budget_s=600).folds == 0


def test_init_architecture_is_kept_and_every_choice_has_a_reason():
    r = plan_recipe(_fp(), init_channels=(4, 8, 16))
    assert r.channels == (4, 8, 16)
    assert set(r.reasons) == {
        "patch",
        "batch_size",
        "patches_per_section",
        "sampling",
        "channels",
        "folds",
    }
    assert r.to_dict()["patch"] == list(r.patch)
