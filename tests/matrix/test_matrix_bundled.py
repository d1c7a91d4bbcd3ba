"""The bundled phantom-trained grading model."""

import numpy as np

from skinoct.matrix import expected_grade, load_matrix_model, predict_tiles


def test_bundled_model_is_labelled_phantom_trained():
    model = load_matrix_model()
    manifest = model.manifest
    assert "phantom" in manifest["notice"] and "not for clinical use" in manifest["notice"]
    assert "phantom" in manifest["provenance"]["training_data"]
    assert manifest["preprocessing"]["input_size"] == 224
    assert manifest["training"]["split"]["test_tiles_also_in_train"] == 0
    assert (model.path / "model.safetensors").stat().st_size < 10_000_000


def test_bundled_model_grades_phantom_tiles_far_from_grade_boundaries():
    from skinoct.io import to_uint8
    from skinoct.phantom import render_enface

    qualities = [1.1, 1.1, 2.0, 2.0, 3.0, 3.0, 3.9, 3.9]
    tiles = np.stack(
        [to_uint8(render_enface(q, seed=500 + i).stack) for i, q in enumerate(qualities)]
    )  # 400 × 400 px at 1 µm; predict_tiles resizes to 224
    p = predict_tiles(tiles, load_matrix_model())
    grades = p.argmax(axis=1) + 1
    assert (grades == np.round(qualities)).sum() >= 7
    score = expected_grade(p).reshape(4, 2).mean(axis=1)
    assert np.all(np.diff(score) > 0.5)  # ordered with the true quality
