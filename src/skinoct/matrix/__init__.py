"""Dermal-matrix quality grading on en-face LC-OCT images (seed 002).

Tiles of 400 × 400 µm taken below the dermal–epidermal junction, with the slices
at z−1, z, z+1 µm as RGB, are graded 1 (coarse, fragmented fibres) … 4 (web-like
reticulated network) by a MobileNetV3-Small. The pieces:

- :func:`extract_tiles` / :func:`profile_tiles` — DEJ-relative tiles from a volume;
- :func:`read_labels`, :func:`majority_grade`, :func:`fleiss_kappa` — rater labels
  (the formats live in :mod:`skinoct.datasets`, re-exported here);
- :func:`train_matrix` with :class:`TrainConfig` — the paper's two-phase protocol,
  split by subject by default;
- :func:`evaluate_predictions` — accuracy, confusion matrix, precision/recall, κ;
- :func:`load_matrix_model`, :func:`predict_tiles`, :func:`expected_grade`.

The bundled default model is trained on phantom tiles only (see its manifest).
"""

from skinoct.datasets import (
    GRADES,
    TileDataset,
    TileLabels,
    fleiss_kappa,
    majority_grade,
    read_labels,
    read_tile_dataset,
    read_tile_png,
    write_tile_dataset,
    write_tile_png,
)
from skinoct.matrix._dej import read_dej
from skinoct.matrix._enface import enface_tiles
from skinoct.matrix._evaluate import (
    GradingMetrics,
    evaluate_predictions,
    plot_confusion,
    read_predictions,
)
from skinoct.matrix._model import (
    ENGINES,
    MatrixModel,
    Preprocessing,
    expected_grade,
    export_matrix_onnx,
    load_matrix_model,
    normalize_batch,
    predict_tiles,
    preprocess_tiles,
    save_matrix_model,
)
from skinoct.matrix._network import (
    MatrixNet,
    build_network,
    keras_layer_table,
    load_pretrained,
    set_phase,
)
from skinoct.matrix._profile import GradeProfile, grade_profile
from skinoct.matrix._quantize import grading_engine, quantize_int8
from skinoct.matrix._tiles import (
    extract_tiles,
    profile_tiles,
    tile_positions,
)
from skinoct.matrix._train import (
    AUGMENTATIONS,
    EarlyStopping,
    SplitIndices,
    TrainConfig,
    TrainResult,
    augment_tiles,
    recalibrate_batch_norm,
    split_tiles,
    train_matrix,
)

__all__ = [
    "AUGMENTATIONS",
    "ENGINES",
    "GRADES",
    "EarlyStopping",
    "GradeProfile",
    "GradingMetrics",
    "MatrixModel",
    "MatrixNet",
    "Preprocessing",
    "SplitIndices",
    "TileDataset",
    "TileLabels",
    "TrainConfig",
    "TrainResult",
    "augment_tiles",
    "build_network",
    "enface_tiles",
    "evaluate_predictions",
    "expected_grade",
    "export_matrix_onnx",
    "extract_tiles",
    "fleiss_kappa",
    "grade_profile",
    "grading_engine",
    "keras_layer_table",
    "load_matrix_model",
    "load_pretrained",
    "majority_grade",
    "normalize_batch",
    "plot_confusion",
    "predict_tiles",
    "preprocess_tiles",
    "profile_tiles",
    "quantize_int8",
    "read_dej",
    "read_labels",
    "read_predictions",
    "read_tile_dataset",
    "read_tile_png",
    "recalibrate_batch_norm",
    "save_matrix_model",
    "set_phase",
    "split_tiles",
    "tile_positions",
    "train_matrix",
    "write_tile_dataset",
    "write_tile_png",
]
