"""skinoct: quantitative analysis of line-field confocal OCT (LC-OCT) skin images.

Subpackages
-----------
io           read/write images, volumes and label masks with physical spacing
phantom      LC-OCT phantom simulator with exact ground truth
layers       U-Net skin-layer segmentation with entropy uncertainty
morphometry  thicknesses, DEJ undulation, papillae from label masks
matrix       dermal-matrix quality grading (MobileNetV3-Small)
study        volume analysis, cohort pipeline, statistics and report
"""

from skinoct._version import __version__
from skinoct.errors import InputError, SkinoctError

__all__ = ["InputError", "SkinoctError", "__version__"]
