"""skinoct's napari plugin (``pip install 'skinoct[napari]'``).

The npe2 manifest ``napari.yaml`` contributes a reader (skinoct inputs and output
folders), a labels writer (OME-TIFF with spacing), phantom sample data and six widgets:
Segment, Analyze volume, Correct, Save as training pair, Annotate next, Fine-tune.
Nothing here imports Qt until napari loads a contribution.
"""

import importlib
import sys

#: Public name → private module; imported on first use (PEP 562), so that importing
#: ``skinoct.napari`` loads neither Qt nor napari.
_LAZY = {
    "SegmentWidget": "_widgets",
    "AnalyzeWidget": "_widgets",
    "CorrectWidget": "_widgets",
    "SaveTrainingPairWidget": "_training",
    "AnnotateNextWidget": "_training",
    "FineTuneWidget": "_training",
    "dej_uncertainty": "_training",
    "reorder_mask": "_correct",
    "get_reader": "_reader",
    "write_labels": "_writer",
    "phantom_section": "_sample_data",
    "phantom_volume": "_sample_data",
    "phantom_cohort": "_sample_data",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"skinoct.napari.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'skinoct.napari' has no attribute {name!r}")

# Triton (the GPU kernel compiler torch.compile uses; torch imports it lazily through
# torch._dynamo, e.g. from torchvision.ops) crashes the process with a segmentation
# fault when it is first imported after an OpenGL context exists (its bundled LLVM
# clashes with the one Mesa loads; seen with napari 0.9.2 under Xvfb). skinoct never
# compiles kernels, so inside napari triton is marked absent, which torch handles as
# "not installed".
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]
