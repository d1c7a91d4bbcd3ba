"""Datasets on disk: building training data from corrected results.

:func:`add_training_pair` writes an image and its corrected mask into the layout that
``skinoct layers train`` reads (``images/``, ``masks/``, ``index.csv``, ``dataset.json``).
"""

from skinoct.datasets._training_pairs import (
    add_segmentation_outputs,
    add_training_pair,
    dataset_ids,
)

__all__ = ["add_segmentation_outputs", "add_training_pair", "dataset_ids"]
