"""segment_volume in worker threads: the same result as one worker (skinoct.layers._volume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.layers import load_layers_model, segment_volume
from skinoct.layers._volume import _worker_plan
from skinoct.phantom import VolumeParams, render_volume


@pytest.fixture(scope="module")
def phantom():
    return render_volume(VolumeParams(size_um=(160.0, 20.0, 240.0)), seed=3)


def test_two_workers_give_the_result_of_one_bit_for_bit(phantom):
    model = load_layers_model(None)
    options = dict(spacing_um=phantom.spacing_um, engine="onnx", batch_size=2,
                   n_overlays=2, crop_margin_um=30.0)  # fmt: skip
    threads = torch.get_num_threads()
    released: dict[int, list] = {1: [], 2: []}
    one = segment_volume(phantom.volume, model, workers=1,
                         after_batch=lambda: released[1].append(1), **options)  # fmt: skip
    two = segment_volume(phantom.volume, model, workers=2,
                         after_batch=lambda: released[2].append(1), **options)  # fmt: skip
    assert torch.get_num_threads() == threads  # restored after the workers
    assert np.isfinite(one.bounds["dej"]).mean() > 0.9  # the phantom has skin everywhere
    for name in one.bounds:
        np.testing.assert_array_equal(two.bounds[name], one.bounds[name])
    np.testing.assert_array_equal(two.dej_entropy, one.dej_entropy)
    assert two.segmented_depth_um == one.segmented_depth_um
    assert sorted(two.overlays) == sorted(one.overlays)
    for y, (section, _bounds, entropy) in one.overlays.items():
        np.testing.assert_array_equal(two.overlays[y][0], section)
        np.testing.assert_array_equal(two.overlays[y][2], entropy)
    assert len(released[2]) == len(released[1]) > 2  # once per batch, by its worker


def test_an_error_in_a_worker_is_raised(phantom, monkeypatch):
    import skinoct.layers

    real = skinoct.layers.segment_sections
    calls = []

    def failing(stack, model, **kwargs):
        calls.append(kwargs["threads"])
        if len(calls) == 3:
            raise InputError("batch three is broken")
        return real(stack, model, **kwargs)

    monkeypatch.setattr(skinoct.layers, "segment_sections", failing)
    with pytest.raises(InputError, match="batch three is broken"):
        segment_volume(phantom.volume, load_layers_model(None), spacing_um=phantom.spacing_um,
                       engine="onnx", batch_size=2, workers=2, crop_margin_um=None)  # fmt: skip
    assert len(calls) >= 3  # the batches after the broken one may or may not have run


@pytest.mark.parametrize(
    ("budget", "engine", "workers", "plan"),
    [
        ("2", "onnx", None, (2, 1)),
        ("1", "onnx", None, (1, None)),  # a study worker's one thread: as before
        ("8", "onnx", None, (2, 4)),
        ("8", "onnx", 4, (4, 2)),
        ("2", "torch", None, (1, None)),
        ("2", "torch", 2, (2, 1)),
    ],
)
def test_worker_plan(monkeypatch, budget, engine, workers, plan):
    monkeypatch.setenv("OMP_NUM_THREADS", budget)
    monkeypatch.setattr("skinoct.models._runtime._cuda_available", lambda: False)
    assert _worker_plan(engine, workers) == plan


def test_workers_must_be_positive(phantom):
    with pytest.raises(InputError, match="workers must be ≥ 1"):
        segment_volume(phantom.volume, None, spacing_um=phantom.spacing_um, workers=0)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_dej_entropy_from_the_band_rows_equals_that_of_the_full_map(phantom, monkeypatch, engine):
    """segment_volume computes the entropy on the rows the DEJ band can reach only (and
    in full for overlays): the same numbers, bit for bit, as from the full entropy map
    that segment_sections computes."""
    import skinoct.layers

    model = load_layers_model(None)
    options = dict(spacing_um=phantom.spacing_um, engine=engine, batch_size=3, n_overlays=2,
                   crop_margin_um=30.0, workers=1)  # fmt: skip
    band = segment_volume(phantom.volume, model, **options)
    real = skinoct.layers.segment_sections
    seen = []

    def full_map(stack, model, **kwargs):
        seen.append(kwargs.pop("entropy"))
        return real(stack, model, **kwargs)  # entropy=True: the full map, as before

    monkeypatch.setattr(skinoct.layers, "segment_sections", full_map)
    full = segment_volume(phantom.volume, model, **options)
    assert seen and not any(seen)  # segment_volume asked for no full map
    assert np.isfinite(full.dej_entropy).mean() > 0.9
    np.testing.assert_array_equal(band.dej_entropy, full.dej_entropy)
    assert sorted(band.overlays) == sorted(full.overlays)
    for y, (_section, _bounds, entropy) in full.overlays.items():
        np.testing.assert_array_equal(band.overlays[y][2], entropy)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    classes=st.sampled_from([(0, 1, 2, 3), (0, 2, 3), (1, 2, 3), (0, 3)]),
    shape=st.tuples(st.integers(8, 70), st.integers(1, 37)),
    dz=st.sampled_from([0.5, 1.0, 2.3]),
    band_um=st.sampled_from([0.1, 3.0, 5.0, 15.0, 20.0]),
)
def test_band_entropy_equals_the_full_entropy_where_dej_entropy_reads(
    seed, classes, shape, dz, band_um
):
    """Any class set (the entropy over the model's classes in its order, divided by
    log K), DEJ gaps, a DEJ above or below the section, odd widths (vector tails)."""
    from skinoct.layers import normalized_entropy
    from skinoct.layers._volume import _band_entropy
    from skinoct.morphometry import dej_entropy

    rng = np.random.default_rng(seed)
    nz, nx = shape
    logits = torch.from_numpy(rng.normal(0, 3, (1, len(classes), nz, nx)).astype(np.float32))
    model_order = torch.softmax(logits, dim=1)
    full_entropy = normalized_entropy(model_order.clone())[0].numpy()
    probs = np.zeros((4, nz, nx), np.float32)  # label order, as segment_sections keeps them
    probs[list(classes)] = model_order[0].numpy()
    dej = rng.uniform(-5, nz * dz + 5, nx)
    dej[rng.random(nx) < 0.3] = np.nan
    got = dej_entropy(_band_entropy(probs, list(classes), dej, dz, band_um), dej, dz,
                      band_um=band_um)  # fmt: skip
    want = dej_entropy(full_entropy, dej, dz, band_um=band_um)
    np.testing.assert_array_equal(got, want)
