"""Dataset formats on disk, shared by the models, the phantom and the napari plugin.

Only file formats live here (reading, writing, validating), with no model code, so that
the phantom (ground truth) and any tool can write datasets without importing a model
package. This package imports only :mod:`skinoct.io` and :mod:`skinoct.errors`.

- layer segmentation: ``images/`` + ``masks/`` (+ ``index.csv``, ``dataset.json``):
  :func:`discover_dataset`, :class:`LayerDataset`, :class:`SectionRecord`,
  :func:`image_stem`;
- dermal-matrix tiles: ``tiles/*.png`` + ``tiles.csv`` + ``labels.csv``:
  :func:`write_tile_dataset`, :func:`read_tile_dataset`, :func:`read_tile_png`,
  :func:`write_tile_png`, :func:`resize_tile`;
- rater labels: :func:`read_labels`, :func:`majority_grade`, :func:`fleiss_kappa`,
  :data:`GRADES`.

See ARCHITECTURE.md ("On-disk layouts").
"""

from skinoct.datasets._labels import (
    GRADES,
    TieRule,
    TileLabels,
    fleiss_kappa,
    majority_grade,
    read_labels,
)
from skinoct.datasets._layers import LayerDataset, SectionRecord, discover_dataset, image_stem
from skinoct.datasets._tiles import (
    TileDataset,
    read_tile_dataset,
    read_tile_png,
    resize_tile,
    write_tile_dataset,
    write_tile_png,
)

__all__ = [
    "GRADES",
    "LayerDataset",
    "SectionRecord",
    "TieRule",
    "TileDataset",
    "TileLabels",
    "discover_dataset",
    "fleiss_kappa",
    "image_stem",
    "majority_grade",
    "read_labels",
    "read_tile_dataset",
    "read_tile_png",
    "resize_tile",
    "write_tile_dataset",
    "write_tile_png",
]
