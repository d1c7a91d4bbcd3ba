"""The tile dataset format moved to :mod:`skinoct.datasets` (a file format, no model code).

Kept so that the import of ``matrix/_train.py`` keeps working; new code imports
:mod:`skinoct.datasets`.
"""

from skinoct.datasets import (
    TileDataset,
    read_tile_dataset,
    read_tile_png,
    write_tile_dataset,
    write_tile_png,
)

__all__ = [
    "TileDataset",
    "read_tile_dataset",
    "read_tile_png",
    "write_tile_dataset",
    "write_tile_png",
]
