"""Training data: loading the sections of a layer dataset (:mod:`skinoct.datasets`).

Layout (written by ``skinoct phantom sections``; real annotated data uses the same)::

    DIR/images/<id>.ome.tif    vertical section with its spacing (PhysicalSizeY/X = dz, dx)
    DIR/masks/<id>.ome.tif     labels 0 air, 1 stratum corneum, 2 epidermis, 3 dermis
                               (255: boundary indeterminate here; the target blends)
    DIR/index.csv              optional: id, subject[, ...]  (subject groups CV folds)
    DIR/dataset.json           optional: {"labels": [0, 2, 3]}  (partial annotations)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from skinoct.datasets import LayerDataset, SectionRecord, discover_dataset, image_stem
from skinoct.errors import InputError
from skinoct.io import INDETERMINATE, read_image, read_mask

__all__ = [
    "LayerDataset",
    "PreparedSection",
    "SectionRecord",
    "discover_dataset",
    "image_stem",
    "prepare_section",
]


@dataclass(frozen=True)
class PreparedSection:
    """A section ready for training: normalised image and class-index mask on the model grid.

    ``target`` holds class indices ``0 … K-1`` into the dataset's label set, not
    skinoct label values.
    """

    id: str
    image: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)


def prepare_section(
    record: SectionRecord,
    *,
    label_values: Sequence[int],
    model_spacing_um: Sequence[float],
    normalize,
) -> PreparedSection:
    """Read one pair, check it, normalise the image and resample both to the model grid.

    Raises
    ------
    InputError
        Unreadable files, a 3-D file, shapes or spacings that differ between image
        and mask, or mask labels outside the dataset's label set.
    """
    import torch

    from skinoct.layers._resample import grid_shape, resample_images, resample_labels

    image = read_image(record.image, axes="zx")
    mask = read_mask(record.mask, axes="zx", allow_indeterminate=True)
    if image.shape != mask.shape:
        raise InputError(
            f"mask shape {mask.shape} differs from the image's {image.shape}", path=record.mask
        )
    if mask.spacing_source == "metadata" and not np.allclose(
        mask.spacing_um, image.spacing_um, rtol=1e-3
    ):
        raise InputError(
            f"mask spacing {mask.spacing_um} µm differs from the image's {image.spacing_um} µm",
            path=record.mask,
        )
    present = np.unique(mask.data)
    foreign = [int(v) for v in present if int(v) not in (*label_values, INDETERMINATE)]
    if foreign:
        raise InputError(
            f"mask holds label(s) {foreign} outside the dataset's label set "
            f"{list(label_values)} (declare it in dataset.json)",
            path=record.mask,
        )
    lut = np.zeros(256, np.uint8)
    for index, value in enumerate(label_values):
        lut[value] = index
    lut[INDETERMINATE] = INDETERMINATE  # blended by skinoct.layers._targets.soft_targets
    grid = grid_shape(image.shape, image.spacing_um, model_spacing_um)
    normed = normalize(image.data)
    resampled = resample_images(torch.from_numpy(normed)[None, None], grid)[0, 0].numpy()
    target = lut[resample_labels(mask.data, grid)]
    return PreparedSection(
        id=record.id,
        image=np.ascontiguousarray(resampled, dtype=np.float32),
        target=np.ascontiguousarray(target),
    )
