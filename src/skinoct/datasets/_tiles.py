"""The dermal-matrix tile dataset on disk: ``tiles/<id>.png``, ``tiles.csv``, ``labels.csv``.

Layout (ARCHITECTURE.md, shared with ``skinoct phantom enface``)::

    DIR/tiles/<tile_id>.png   RGB uint8 = en-face slices at z−1, z, z+1 µm, 400 × 400 µm
    DIR/tiles.csv             tile_id, volume_id, subject, depth_um, row, col[, q, …]
    DIR/labels.csv            tile_id, grade   or   tile_id, rater_1 … rater_k
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io import atomic_path, write_text

__all__ = [
    "TileDataset",
    "read_tile_dataset",
    "read_tile_png",
    "resize_tile",
    "write_tile_dataset",
    "write_tile_png",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._+-]+$")


def write_tile_png(path: str | Path, tile: np.ndarray) -> Path:
    """Write one tile (3, H, W) uint8 as an RGB PNG, atomically."""
    from PIL import Image as PILImage

    tile = np.asarray(tile)
    if tile.ndim != 3 or tile.shape[0] != 3 or tile.dtype != np.uint8:
        raise InputError(f"a tile PNG needs uint8 data (3, H, W), got {tile.dtype} {tile.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        PILImage.fromarray(np.ascontiguousarray(tile.transpose(1, 2, 0)), mode="RGB").save(
            tmp, format="PNG"
        )
    return path


def read_tile_png(path: str | Path) -> np.ndarray:
    """Read a tile PNG as uint8 (3, H, W); grey images fill all three channels."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError("tile image not found", path=path)
    try:
        with PILImage.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I", "F"):
                raise InputError(f"tiles must be 8-bit RGB, got mode {img.mode}", path=path)
            data = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot read tile image: {exc}", path=path) from exc
    return np.ascontiguousarray(data.transpose(2, 0, 1))


def resize_tile(tile: np.ndarray, size: int) -> np.ndarray:
    """Resize a (3, h, w) uint8 tile to (3, size, size): antialiased bilinear, rounded.

    PIL's bilinear filter (antialiased when shrinking); it matches the tiles' own
    resampling (:func:`torch.nn.functional.interpolate`, ``antialias=True``) within
    0.003 grey levels before rounding. A tile of that size comes back unchanged.
    """
    from PIL import Image as PILImage

    tile = np.asarray(tile)
    if tile.ndim != 3 or tile.shape[0] != 3:
        raise InputError(f"a tile is a (3, h, w) array, got shape {tile.shape}")
    if tile.shape[1:] == (size, size):
        return tile
    planes = [
        np.asarray(
            PILImage.fromarray(np.asarray(c, np.float32), mode="F").resize(
                (size, size), PILImage.BILINEAR
            )
        )
        for c in tile
    ]
    return np.clip(np.stack(planes) + 0.5, 0, 255).astype(np.uint8)


def write_tile_dataset(
    out_dir: str | Path, tiles: np.ndarray, index, *, replace_volume: bool = True
) -> Path:
    """Write tiles as PNGs and merge their rows into ``DIR/tiles.csv``.

    Rows of the same ``volume_id`` already in ``tiles.csv`` are replaced (when
    ``replace_volume``), so re-tiling a volume does not duplicate it; their stale
    PNGs are removed.

    Returns
    -------
    Path
        ``DIR/tiles.csv``.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    tiles = np.asarray(tiles)
    if tiles.dtype != np.uint8:
        raise InputError("tile datasets store uint8 tiles; extract with dtype='uint8'")
    if len(tiles) != len(index):
        raise InputError(f"{len(tiles)} tiles but {len(index)} index rows")
    for tile_id in index["tile_id"]:
        if not _SAFE_ID.match(str(tile_id)):
            raise InputError(f"tile id {tile_id!r} is not a safe file name (letters, digits, ._+-)")
    folder = out_dir / "tiles"
    folder.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "tiles.csv"
    table = index.copy()
    if csv.is_file():
        old = pd.read_csv(csv, dtype={"tile_id": str, "volume_id": str, "subject": str})
        if replace_volume and "volume_id" in old.columns:
            stale = old["volume_id"].isin(set(table["volume_id"]))
            for tile_id in old.loc[stale, "tile_id"]:
                if tile_id not in set(table["tile_id"]):
                    (folder / f"{tile_id}.png").unlink(missing_ok=True)
            old = old.loc[~stale]
        table = pd.concat([old, table], ignore_index=True)
        if table["tile_id"].duplicated().any():
            dup = table.loc[table["tile_id"].duplicated(), "tile_id"].iloc[0]
            raise InputError(f"tile id {dup!r} is already in the dataset", path=csv)
    for tile, tile_id in zip(tiles, index["tile_id"], strict=True):
        write_tile_png(folder / f"{tile_id}.png", tile)
    write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    return csv


@dataclass(frozen=True)
class TileDataset:
    """A labelled tile dataset in memory.

    Attributes
    ----------
    tiles : ndarray of uint8, shape (N, 3, S, S)
    table : pandas.DataFrame
        One row per tile, aligned with ``tiles``: ``tile_id``, ``subject``, ``grade``
        (the training grade) and whatever else ``tiles.csv`` / ``labels.csv`` hold.
    raters : tuple of str
        Rater columns of ``labels.csv`` (empty when it held grades only).
    kappa : float or None
        Fleiss' κ of the raters.
    root : Path
    """

    tiles: np.ndarray
    table: object
    raters: tuple[str, ...]
    kappa: float | None
    root: Path


def read_tile_dataset(
    root: str | Path,
    *,
    size: int | None = 224,
    tie: str = "median",
    require_subject: bool = True,
    workers: int = 4,
) -> TileDataset:
    """Load a labelled tile dataset (PNG tiles resized to ``size`` px).

    Parameters
    ----------
    root : str or Path
        Dataset folder.
    size : int or None
        Resize every tile to ``size × size`` (antialiased bilinear); None keeps the
        stored size (all tiles must then match).
    tie : str
        Tie rule of the rater majority vote (:func:`majority_grade`).
    require_subject : bool
        Demand ``tiles.csv`` with a ``subject`` column (needed for the subject split).
    workers : int
        Threads decoding PNGs.

    Raises
    ------
    InputError
        Missing files or columns, labelled tiles without a PNG, tiles of mixed size.
    """
    import pandas as pd

    from skinoct.datasets._labels import read_labels

    root = Path(root)
    if not root.is_dir():
        raise InputError("dataset folder not found", path=root)
    labels = read_labels(root / "labels.csv", tie=tie)
    table = labels.table.reset_index()
    csv = root / "tiles.csv"
    if csv.is_file():
        try:
            index = pd.read_csv(csv, dtype={"tile_id": str, "volume_id": str, "subject": str})
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise InputError(f"cannot read tiles CSV: {exc}", path=csv) from exc
        if "tile_id" not in index.columns:
            raise InputError("tiles.csv needs a 'tile_id' column", path=csv)
        index = index.drop(columns=[c for c in ("grade",) if c in index.columns])
        missing = ~table["tile_id"].isin(index["tile_id"])
        if missing.any():
            raise InputError(
                f"{int(missing.sum())} labelled tile(s) are not in tiles.csv, "
                f"e.g. {table.loc[missing, 'tile_id'].iloc[0]!r}",
                path=csv,
            )
        table = table.merge(index, on="tile_id", how="left", suffixes=("", "_index"))
    if require_subject and "subject" not in table.columns:
        raise InputError(
            "the subject split needs tiles.csv with a 'subject' column "
            "(or use the random-paper split)",
            path=root,
        )
    if "subject" in table.columns and table["subject"].isna().any():
        raise InputError("some tiles have no subject in tiles.csv", path=csv)
    files = [root / "tiles" / f"{tile_id}.png" for tile_id in table["tile_id"]]
    for file in files:
        if not file.is_file():
            raise InputError("labelled tile has no PNG", path=file)

    def load(file):
        tile = read_tile_png(file)
        return tile if size is None else resize_tile(tile, size)

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        tiles = list(pool.map(load, files))
    shapes = {t.shape for t in tiles}
    if len(shapes) > 1:
        raise InputError(f"tiles have different sizes {sorted(shapes)[:3]}; give a size", path=root)
    array = np.stack(tiles) if tiles else np.zeros((0, 3, size or 224, size or 224), np.uint8)
    return TileDataset(
        tiles=array, table=table, raters=labels.raters, kappa=labels.kappa, root=root
    )
