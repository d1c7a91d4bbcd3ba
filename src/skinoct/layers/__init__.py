"""Skin-layer segmentation of vertical LC-OCT sections (seed 000: U-Net, Dice 0.95).

A MONAI ``UNet`` labels every pixel of a vertical section as air (0), stratum
corneum (1), viable epidermis (2) or dermis (3), and reports its own uncertainty as
the normalised softmax entropy (0 certain, 1 uniform). Training runs
subject-grouped k-fold cross-validation; models are safetensors + JSON manifests
verified by SHA-256; inference runs on torch or onnxruntime.

The bundled default model was trained on synthetic phantoms only; retrain or
fine-tune it (``skinoct layers train DATA --init MODEL``) on real annotated data.

Examples
--------
>>> from skinoct.layers import load_layers_model, segment_section  # doctest: +SKIP
>>> model = load_layers_model()  # bundled phantom-trained model  # doctest: +SKIP
>>> result = segment_section(image, model, spacing_um=(1.0, 1.0))  # doctest: +SKIP
>>> result.labels, result.entropy  # doctest: +SKIP
"""

from skinoct.datasets import LayerDataset, SectionRecord, discover_dataset, image_stem
from skinoct.layers._boundary_metrics import boundary_depths, boundary_errors
from skinoct.layers._calibration import (
    DEFAULT_CALIBRATION_QUANTILE,
    UNCERTAINTY_KEY,
    DejFlag,
    calibrate_uncertainty,
    calibration_threshold,
    dej_entropy_threshold,
    dej_flag_settings,
    section_flag_scores,
    segmentation_flag_score,
    write_uncertainty_calibration,
)
from skinoct.layers._compare import compare_on_folds, summarize_sections
from skinoct.layers._decode import (
    MIN_EPIDERMIS_UM,
    decode_ordered,
    label_components,
    min_epidermis_rows,
    ordered_boundaries,
    ordering_violations,
)
from skinoct.layers._ensemble import EnsembleLayersModel, load_layers_ensemble
from skinoct.layers._evaluate import evaluate_dataset
from skinoct.layers._inference import (
    DECODINGS,
    ENGINES,
    SegmentationResult,
    normalized_entropy,
    predict_logits,
    resolve_section_engine,
    segment_section,
    segment_sections,
)
from skinoct.layers._metrics import dice_per_layer, mean_dice, summarize_dice
from skinoct.layers._model import (
    DEFAULT_MODEL_SPACING_UM,
    SYNTHETIC_NOTICE,
    LayersModel,
    load_layers_model,
    save_layers_model,
)
from skinoct.layers._network import NetworkSpec
from skinoct.layers._outputs import write_segmentation
from skinoct.layers._overlay import (
    ENTROPY_COLORMAP,
    boundary_overlay,
    entropy_overlay,
    write_rgb_png,
)
from skinoct.layers._recipe import DatasetFingerprint, Recipe, dataset_fingerprint, plan_recipe
from skinoct.layers._resample import grid_shape
from skinoct.layers._sampling import SAMPLING_MODES, BandSampler, band_crop, tissue_band
from skinoct.layers._targets import layer_loss, soft_targets
from skinoct.layers._train import TrainConfig, TrainResult, grouped_folds, train_layers
from skinoct.layers._volume import VolumeSegmentation, segment_volume

__all__ = [
    "DECODINGS",
    "DEFAULT_CALIBRATION_QUANTILE",
    "DEFAULT_MODEL_SPACING_UM",
    "ENGINES",
    "ENTROPY_COLORMAP",
    "MIN_EPIDERMIS_UM",
    "SAMPLING_MODES",
    "SYNTHETIC_NOTICE",
    "UNCERTAINTY_KEY",
    "BandSampler",
    "DatasetFingerprint",
    "DejFlag",
    "EnsembleLayersModel",
    "LayerDataset",
    "LayersModel",
    "NetworkSpec",
    "Recipe",
    "SectionRecord",
    "SegmentationResult",
    "TrainConfig",
    "TrainResult",
    "VolumeSegmentation",
    "band_crop",
    "boundary_depths",
    "boundary_errors",
    "boundary_overlay",
    "calibrate_uncertainty",
    "calibration_threshold",
    "compare_on_folds",
    "dataset_fingerprint",
    "decode_ordered",
    "dej_entropy_threshold",
    "dej_flag_settings",
    "dice_per_layer",
    "discover_dataset",
    "entropy_overlay",
    "evaluate_dataset",
    "grid_shape",
    "grouped_folds",
    "image_stem",
    "label_components",
    "layer_loss",
    "load_layers_ensemble",
    "load_layers_model",
    "mean_dice",
    "min_epidermis_rows",
    "normalized_entropy",
    "ordered_boundaries",
    "ordering_violations",
    "plan_recipe",
    "predict_logits",
    "resolve_section_engine",
    "save_layers_model",
    "section_flag_scores",
    "segment_section",
    "segment_sections",
    "segment_volume",
    "segmentation_flag_score",
    "soft_targets",
    "summarize_dice",
    "summarize_sections",
    "tissue_band",
    "train_layers",
    "write_rgb_png",
    "write_segmentation",
    "write_uncertainty_calibration",
]
