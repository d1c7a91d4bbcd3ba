import numpy as np
import pytest
import torch
from _layers_synthetic import synthetic_section

from skinoct.errors import InputError
from skinoct.layers import (
    label_components,
    normalized_entropy,
    ordering_violations,
    segment_section,
    segment_sections,
)


def _image(shape, seed=0):
    image, _ = synthetic_section(np.random.default_rng(seed), shape)
    return image


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((37, 53), (1.0, 1.0)), ((64, 97), (0.7, 1.3)), ((5, 3), (1.0, 1.0)), ((101, 33), (2.0, 0.5))],
)
def test_output_shape_equals_input_shape(tiny_model_dir, shape, spacing):
    result = segment_section(_image(shape), tiny_model_dir, spacing_um=spacing, device="cpu")
    assert result.labels.shape == result.entropy.shape == shape
    assert result.probabilities.shape == (4, *shape)
    assert result.labels.dtype == np.uint8 and result.entropy.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(0), 1.0, atol=1e-5)
    assert 0.0 <= result.entropy.min() and result.entropy.max() <= 1.0
    assert result.spacing_um == spacing
    assert result.decoding == "ordered"
    assert ordering_violations(result.labels) == 0
    assert all(n == 1 for n in label_components(result.labels).values())
    raw = segment_section(
        _image(shape), tiny_model_dir, spacing_um=spacing, device="cpu", decoding="argmax"
    )
    np.testing.assert_array_equal(raw.labels, raw.probabilities.argmax(0))
    np.testing.assert_array_equal(raw.entropy, result.entropy)  # entropy is pre-decoding


def test_tiled_sliding_window_keeps_the_shape(tiny_model):
    tiny_model.max_window = (16, 16)  # force several Gaussian-blended windows
    image = _image((45, 71))
    result = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), device="cpu")
    assert result.labels.shape == (45, 71)
    assert np.isfinite(result.probabilities).all()
    np.testing.assert_allclose(result.probabilities.sum(0), 1.0, atol=1e-5)


def test_normalized_entropy_analytic():
    uniform = np.full((4, 2, 3), 0.25, np.float32)[None]
    certain = np.zeros((1, 4, 2, 3), np.float32)
    certain[:, 2] = 1
    half = np.zeros((1, 4, 1, 1), np.float32)
    half[:, :2] = 0.5  # log 2 / log 4
    np.testing.assert_allclose(normalized_entropy(uniform), 1.0, atol=1e-6)
    np.testing.assert_allclose(normalized_entropy(certain), 0.0, atol=1e-6)
    np.testing.assert_allclose(normalized_entropy(half), 0.5, atol=1e-6)
    torch.testing.assert_close(
        normalized_entropy(torch.from_numpy(half)), torch.full((1, 1, 1), 0.5)
    )


def test_normalized_entropy_torch_and_numpy_agree_with_zero_probabilities():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 6, (2, 4, 9, 13)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0, :, 0, 0] = [0.0, 0.0, 1.0, 0.0]  # certain: the zeros add nothing
    probs[1, :, 2, 3] = [0.5, 0.0, 0.5, 0.0]
    got = normalized_entropy(torch.from_numpy(probs)).numpy()
    np.testing.assert_allclose(got, normalized_entropy(probs), atol=1e-6)
    assert got[0, 0, 0] == 0.0 and got[1, 2, 3] == pytest.approx(0.5, abs=1e-6)


def test_stack_equals_one_section_at_a_time(tiny_model):
    stack = np.stack([_image((40, 50), seed) for seed in range(3)])
    batch = segment_sections(
        stack,
        tiny_model,
        spacing_um=(1.0, 1.0),
        batch_size=2,
        keep_probabilities=True,
        device="cpu",
    )
    assert batch.labels.shape == (3, 40, 50) and batch.probabilities.shape == (3, 4, 40, 50)
    for i in range(3):
        one = segment_section(stack[i], tiny_model, spacing_um=(1.0, 1.0), device="cpu")
        np.testing.assert_array_equal(batch.labels[i], one.labels)
        np.testing.assert_allclose(batch.entropy[i], one.entropy, atol=1e-5)
    lean = segment_sections(stack, tiny_model, spacing_um=(1.0, 1.0), device="cpu")
    assert lean.probabilities is None


def test_tta_is_mirror_symmetric(tiny_model):
    """Flip averaging: segmenting the mirror image gives the mirrored result."""
    image = _image((32, 48))
    a = segment_section(image, tiny_model, spacing_um=(1.0, 2.0), tta=True, device="cpu")
    b = segment_section(image[:, ::-1], tiny_model, spacing_um=(1.0, 2.0), tta=True, device="cpu")
    np.testing.assert_allclose(a.probabilities, b.probabilities[:, :, ::-1], atol=1e-5)
    plain = segment_section(image, tiny_model, spacing_um=(1.0, 2.0), device="cpu")
    assert not np.allclose(plain.probabilities, a.probabilities)


def test_mc_dropout_is_seeded_and_leaves_the_global_rng_alone(tiny_model):
    image = _image((32, 40))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), mc_dropout=3, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    b = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), mc_dropout=3, device="cpu")
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    c = segment_section(
        image, tiny_model, spacing_um=(1.0, 1.0), mc_dropout=3, seed=1, device="cpu"
    )
    assert not np.allclose(a.probabilities, c.probabilities)
    mi = a.mutual_information
    assert mi.shape == image.shape and 0 <= mi.min() and mi.max() <= 1 and mi.max() > 0
    # Dropout is off again afterwards: plain inference is deterministic.
    d1 = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), device="cpu")
    d2 = segment_section(image, tiny_model, spacing_um=(1.0, 1.0), device="cpu")
    np.testing.assert_array_equal(d1.probabilities, d2.probabilities)
    assert d1.mutual_information is None


def test_partial_class_model_reports_four_label_probabilities(tmp_path):
    from _layers_synthetic import random_model

    model = random_model(1, label_values=(0, 2, 3))
    result = segment_section(_image((24, 30)), model, spacing_um=(1.0, 1.0), device="cpu")
    assert result.label_values == (0, 2, 3)
    assert np.all(result.probabilities[1] == 0)  # no stratum corneum class
    assert set(np.unique(result.labels)) <= {0, 2, 3}
    assert ordering_violations(result.labels) == 0
    np.testing.assert_allclose(result.probabilities.sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"engine": "tensorrt"}, ValueError, "engine must be one of"),
        ({"mc_dropout": -1}, ValueError, "mc_dropout"),
        ({"engine": "onnx", "mc_dropout": 2}, ValueError, "needs engine='torch'"),
        ({"spacing_um": (0.0, 1.0)}, InputError, "spacing"),
        ({"device": "tpu"}, ValueError, "device must be"),
        ({"decoding": "viterbi"}, ValueError, "decoding must be one of"),
    ],
)
def test_bad_options(tiny_model, kwargs, error, match):
    args = {"spacing_um": (1.0, 1.0), **kwargs}
    with pytest.raises(error, match=match):
        segment_section(_image((16, 16)), tiny_model, **args)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 5, 6)), "2-D vertical section"),
        (np.array([[np.nan, 1.0], [1.0, 1.0]]), "NaN"),
        (np.zeros((2, 2), bool), "pixel type"),
    ],
)
def test_bad_images(tiny_model, image, match):
    with pytest.raises(InputError, match=match):
        segment_section(image, tiny_model, spacing_um=(1.0, 1.0))


def test_bundled_model_segments_a_phantom_section():
    """The shipped model on a fresh phantom: a regression guard, not a clinical claim."""
    from skinoct.layers import dice_per_layer, load_layers_model, mean_dice
    from skinoct.phantom import SectionParams, render_section

    section = render_section(SectionParams(width_um=400, site="forearm", noise=1.0), seed=11)
    result = segment_section(
        section.image, load_layers_model(), spacing_um=section.spacing_um, device="cpu"
    )
    assert mean_dice(dice_per_layer(result.labels, section.labels)) > 0.9


def test_single_window_logits_are_monais_sliding_window_output(tiny_model):
    """A batch within the model's window skips MONAI's sliding window: same numbers."""
    from monai.inferers import sliding_window_inference

    from skinoct.layers._inference import _window_logits

    batch = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 1, 32, 48)))
    batch = batch.float()
    got = _window_logits(tiny_model, batch, device="cpu", runner=None, stochastic=False)
    net = tiny_model.network("cpu")
    with torch.inference_mode():
        want = sliding_window_inference(batch, roi_size=(32, 48), sw_batch_size=2,
                                        predictor=net, overlap=0.0, mode="constant")  # fmt: skip
    want = want.as_tensor() if hasattr(want, "as_tensor") else want
    torch.testing.assert_close(got, want.float(), rtol=0, atol=0)
