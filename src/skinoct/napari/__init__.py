"""skinoct's napari plugin (``pip install 'skinoct[napari]'``).

The npe2 manifest ``napari.yaml`` contributes a reader (skinoct inputs and output
folders), a labels writer (OME-TIFF with spacing), phantom sample data and six widgets:
Segment, Analyze volume, Correct, Save as training pair, Annotate next, Fine-tune.
Nothing here imports Qt until napari loads a contribution.
"""

import sys

__all__: list[str] = []

# Triton (the GPU kernel compiler torch.compile uses; torch imports it lazily through
# torch._dynamo, e.g. from torchvision.ops) crashes the process with a segmentation
# fault when it is first imported after an OpenGL context exists (its bundled LLVM
# clashes with the one Mesa loads; seen with napari 0.9.2 under Xvfb). skinoct never
# compiles kernels, so inside napari triton is marked absent, which torch handles as
# "not installed".
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]
