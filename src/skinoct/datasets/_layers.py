"""The layer-segmentation dataset format: ``images/`` + ``masks/`` folders, found by stem.

Layout (written by ``skinoct phantom sections``; real annotated data uses the same)::

    DIR/images/<id>.ome.tif    vertical section with its spacing (PhysicalSizeY/X = dz, dx)
    DIR/masks/<id>.ome.tif     labels 0 air, 1 stratum corneum, 2 epidermis, 3 dermis
    DIR/index.csv              optional: id, subject[, ...]  (subject groups CV folds)
    DIR/dataset.json           optional: {"labels": [0, 2, 3]}  (partial annotations)

Loading and resampling a section for training is :mod:`skinoct.layers`' business.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io import IMAGE_SUFFIXES, LABEL_NAMES

__all__ = ["LayerDataset", "SectionRecord", "discover_dataset", "image_stem"]


def image_stem(path: str | Path) -> str:
    """File name without its image suffix (``a.ome.tif`` -> ``a``)."""
    name = Path(path).name
    lower = name.lower()
    for suffix in (".ome.tiff", ".ome.tif", *IMAGE_SUFFIXES):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


@dataclass(frozen=True)
class SectionRecord:
    """One annotated section of a dataset: its id, files and subject."""

    id: str
    image: Path
    mask: Path
    subject: str


@dataclass(frozen=True)
class LayerDataset:
    """An annotated layer-segmentation dataset found by :func:`discover_dataset`.

    Attributes
    ----------
    root : Path
        The dataset folder.
    records : tuple of SectionRecord
        Sorted by id.
    label_values : tuple of int
        The labels annotated in this dataset (all four unless ``dataset.json`` says
        otherwise).
    grouped : bool
        True when ``index.csv`` gave subjects; otherwise each section is its own group.
    """

    root: Path
    records: tuple[SectionRecord, ...] = field(repr=False)
    label_values: tuple[int, ...]
    grouped: bool

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def subjects(self) -> np.ndarray:
        return np.array([r.subject for r in self.records])

    @property
    def tissue_values(self) -> tuple[int, ...]:
        """Labels whose Dice is reported (the annotated ones except air)."""
        return tuple(v for v in self.label_values if v != 0)


def discover_dataset(data_dir: str | Path) -> LayerDataset:
    """Find the sections of a dataset folder and their masks, subjects and label set.

    Images and masks are matched by stem (``images/a.ome.tif`` with ``masks/a.tif``).
    ``index.csv`` (columns ``id`` and ``subject``) groups sections by subject for
    cross-validation; without it every section is its own group. ``dataset.json``
    ``{"labels": [...]}`` declares a partial label set: masks may then hold only
    those labels.

    Raises
    ------
    InputError
        Missing folders, no pairs, a mask without image, duplicated stems, an
        ``index.csv`` without ``id``/``subject`` columns or without a row for a
        section, or an invalid ``dataset.json``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError("dataset folder not found", path=root)
    images_dir, masks_dir = root / "images", root / "masks"
    for sub in (images_dir, masks_dir):
        if not sub.is_dir():
            raise InputError(
                f"no {sub.name}/ folder: a dataset holds images/<id>.tif and masks/<id>.tif",
                path=root,
            )
    images = _by_stem(images_dir)
    masks = _by_stem(masks_dir)
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise InputError(
            f"{len(orphans)} mask(s) without an image: {', '.join(orphans[:5])}", path=masks_dir
        )
    missing = sorted(set(images) - set(masks))
    if missing:
        warnings.warn(
            f"{root}: {len(missing)} image(s) without a mask are left out: "
            f"{', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""),
            stacklevel=2,
        )
    ids = sorted(set(images) & set(masks))
    if not ids:
        raise InputError("no image/mask pairs with matching names", path=root)
    subjects, grouped = _read_index(root / "index.csv", ids)
    labels = _read_label_set(root / "dataset.json")
    records = tuple(
        SectionRecord(id=i, image=images[i], mask=masks[i], subject=subjects[i]) for i in ids
    )
    return LayerDataset(root=root, records=records, label_values=labels, grouped=grouped)


def _by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if not path.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        stem = image_stem(path)
        if stem in out:
            raise InputError(f"two files share the stem {stem!r}: {out[stem].name}", path=path)
        out[stem] = path
    return out


def _read_index(path: Path, ids: Sequence[str]) -> tuple[dict[str, str], bool]:
    if not path.is_file():
        return {i: i for i in ids}, False
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read index.csv: {exc}", path=path) from None
    if not rows or "id" not in rows[0] or "subject" not in rows[0]:
        raise InputError("index.csv needs the columns 'id' and 'subject'", path=path)
    subjects = {str(r["id"]).strip(): str(r["subject"]).strip() for r in rows}
    lacking = [i for i in ids if i not in subjects or not subjects[i]]
    if lacking:
        raise InputError(
            f"no subject for {len(lacking)} section(s): {', '.join(lacking[:5])}", path=path
        )
    return {i: subjects[i] for i in ids}, True


def _read_label_set(path: Path) -> tuple[int, ...]:
    if not path.is_file():
        return tuple(LABEL_NAMES)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        values = spec["labels"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(
            f'dataset.json must look like {{"labels": [0, 2, 3]}} ({exc})', path=path
        ) from None
    return _check_label_set(values, path=path)


def _check_label_set(values, *, path) -> tuple[int, ...]:
    """At least two distinct skinoct labels, sorted (the classes a model can be trained on)."""
    from skinoct.io import check_label_set

    return check_label_set(values, path=path)
