"""The int8 grading engine: calibration and check tiles from the phantom, engine choice.

``engine='openvino-int8'`` runs an NNCF post-training int8 quantisation of the grading
model's ONNX export (:class:`skinoct.models.Int8Export`). It is calibrated on seeded
phantom en-face tiles (:func:`skinoct.phantom.render_enface`, q uniform in [1, 4]) and
checked against float32 onnxruntime on other seeded phantom tiles: it is used only
when it gives the same grade on ≥ 97 % of them and loses ≤ 0.5 points of accuracy
against the phantom's true grade. Phantom tiles are not clinical data; the check says
the quantisation preserves this model's behaviour, nothing about real skin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skinoct.errors import ModelError

__all__ = [
    "CALIBRATION_TILES", "CHECK_TILES", "grading_engine", "int8_export", "quantize_int8",
]

#: Phantom tiles NNCF calibrates on (seed 11) and the agreement check grades (seed 7).
CALIBRATION_TILES = 128
CHECK_TILES = 192


def int8_export(model, tiles=None, *, n_calibration: int | None = None, n_check: int | None = None):
    """The :class:`~skinoct.models.Int8Export` of a grading model (not yet quantised).

    ``tiles(n, seed=, size=) -> (uint8 tiles, grades)`` gives the calibration and check
    tiles (:func:`skinoct.phantom.grading_tiles`; :data:`CALIBRATION_TILES`, seed 11 and
    :data:`CHECK_TILES`, seed 7). Without it the cached int8 model can be used but not
    made (matrix does not import the phantom)."""
    from skinoct.matrix._model import preprocess_tiles
    from skinoct.models import Int8Export

    size = int(model.preprocessing.input_size)

    def inputs(n: int, seed: int):
        if tiles is None:
            raise ModelError(
                "no verified int8 model of this grading model is cached; make it once with "
                "skinoct.matrix.quantize_int8(model, skinoct.phantom.grading_tiles)"
            )
        uint8, grades = tiles(n, seed=seed, size=size)
        x = preprocess_tiles(uint8, model.preprocessing, normalize=False).numpy()
        labels = np.searchsorted(np.asarray(model.classes), grades)
        return x, labels

    return Int8Export(
        model._exported(),
        calibration=lambda: inputs(n_calibration or CALIBRATION_TILES, 11)[0],
        validation=lambda: inputs(n_check or CHECK_TILES, 7),
    )


def quantize_int8(model, tiles) -> dict[str, Any]:
    """Quantise the grading model to int8 now (cached beside its ONNX export) and return
    the agreement check (``agreement``, ``accuracy_f32``, ``accuracy_int8``, ``n``,
    ``passed``, and the speeds: ``int8_per_s``, ``float_engine``, ``float_per_s``,
    ``faster``). Takes a minute or two on 2 cores; ``engine='auto'`` then uses the int8
    model when the check passed and it was faster."""
    model._int8 = int8_export(model, tiles)
    return model.int8().check()


def grading_engine(engine: str, model, *, device=None) -> str:
    """The engine that grades for ``engine`` (``'auto'`` resolved).

    ``'auto'`` on the CPU is ``'openvino-int8'`` when OpenVINO is installed and a verified
    int8 model of this model is cached, passed its agreement check and was measured at
    least 5 % faster than the float engine chosen otherwise on this CPU when it was
    checked (never quantises: run :func:`quantize_int8` or ``engine='openvino-int8'``
    once); otherwise :func:`skinoct.models.resolve_engine`'s choice. A check recorded
    before the speed was measured counts as faster.
    """
    from skinoct.models import INT8_ENGINE, openvino_available, resolve_engine

    resolved = resolve_engine(engine, task="matrix", device=device)
    if engine != "auto" or str(device or "cpu").startswith("cuda"):
        return resolved
    if openvino_available():
        check = model.int8().cached_check()
        if check is not None and check.get("passed") and check.get("faster", True):
            return INT8_ENGINE
    return resolved
