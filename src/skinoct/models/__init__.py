"""The one model layer of skinoct, shared by :mod:`skinoct.layers` and :mod:`skinoct.matrix`.

- artifacts: ``model.safetensors`` + ``model.json``, the manifest validated against a
  schema and the weights verified by SHA-256 on load (no pickle anywhere);
- the runtime: device resolution, engines (torch / onnxruntime / OpenVINO, ``'auto'``),
  the ONNX export cache keyed by the model digest and verified on load;
- provenance: the model's fingerprint and whether it saw synthetic data only;
- the training skeleton: events, config checks, early stopping, best weights,
  checkpoints (safetensors + JSON) and resume, a wall-clock budget.

The bundled phantom-trained default models live in ``skinoct/models/bundled/``.
"""

from skinoct.models._artifact import (
    MANIFEST_NAME,
    WEIGHTS_NAME,
    Artifact,
    bundled_model_dir,
    load_artifact,
    save_artifact,
    sha256_file,
)
from skinoct.models._cache import ExportedEngines, cache_dir, export_location
from skinoct.models._checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from skinoct.models._int8 import INT8_ENGINE, Int8Export, agreement_check, nncf_available
from skinoct.models._onnx import OnnxRunner, OpenVinoRunner, export_onnx
from skinoct.models._provenance import (
    model_digest,
    model_provenance,
    state_digest,
    trained_on_synthetic,
)
from skinoct.models._runtime import (
    ENGINES,
    Engine,
    cpu_has_bf16,
    default_threads,
    onnxruntime_available,
    openvino_available,
    resolve_device,
    resolve_engine,
)
from skinoct.models._schema import read_manifest, validate_manifest
from skinoct.models._training import (
    BestWeights,
    Budget,
    EarlyStopping,
    Emitter,
    EpochOutcome,
    FitState,
    TrainEvent,
    check_choice,
    check_config,
    check_positive,
    config_matches,
    fit_state,
    restore_fit_state,
    run_epochs,
)

__all__ = [
    "CHECKPOINT_NAME",
    "ENGINES",
    "INT8_ENGINE",
    "MANIFEST_NAME",
    "WEIGHTS_NAME",
    "Artifact",
    "BestWeights",
    "Budget",
    "EarlyStopping",
    "Emitter",
    "Engine",
    "EpochOutcome",
    "ExportedEngines",
    "FitState",
    "Int8Export",
    "OnnxRunner",
    "OpenVinoRunner",
    "TrainEvent",
    "agreement_check",
    "bundled_model_dir",
    "cache_dir",
    "check_choice",
    "check_config",
    "check_positive",
    "config_matches",
    "cpu_has_bf16",
    "default_threads",
    "export_location",
    "export_onnx",
    "fit_state",
    "load_artifact",
    "load_checkpoint",
    "model_digest",
    "model_provenance",
    "nncf_available",
    "onnxruntime_available",
    "openvino_available",
    "read_manifest",
    "remove_checkpoint",
    "resolve_device",
    "resolve_engine",
    "restore_fit_state",
    "run_epochs",
    "save_artifact",
    "save_checkpoint",
    "sha256_file",
    "state_digest",
    "trained_on_synthetic",
    "validate_manifest",
]
