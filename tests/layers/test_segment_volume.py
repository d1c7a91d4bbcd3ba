"""segment_volume in worker threads: the same result as one worker (skinoct.layers._volume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
