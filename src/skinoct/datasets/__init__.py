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
  :data:`GRADES`;
- training pairs from corrected results: :func:`add_training_pair` writes an image and
  its corrected mask into the layer-dataset layout that ``skinoct layers train`` reads.

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
from skinoct.datasets._training_pairs import (
    add_segmentation_outputs,
    add_training_pair,
    dataset_ids,
)

__all__ = [
    "GRADES",
    "LayerDataset",
    "SectionRecord",
    "TieRule",
    "TileDataset",
    "TileLabels",
    "add_segmentation_outputs",
    "add_training_pair",
    "dataset_ids",
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
