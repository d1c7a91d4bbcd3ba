"""Model artifacts: safetensors weights + a JSON manifest, verified on load.

Shared by :mod:`skinoct.layers` and :mod:`skinoct.matrix`. No pickle anywhere.
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
from skinoct.models._onnx import OnnxRunner, OpenVinoRunner, export_onnx, onnxruntime_available

__all__ = [
    "MANIFEST_NAME",
    "WEIGHTS_NAME",
    "Artifact",
    "OnnxRunner",
    "OpenVinoRunner",
    "bundled_model_dir",
    "export_onnx",
    "load_artifact",
    "onnxruntime_available",
    "save_artifact",
    "sha256_file",
]
