"""Adding corrected image / mask pairs to a layer-segmentation training dataset.

The dataset layout is the one ``skinoct layers train`` reads
(:func:`skinoct.layers.discover_dataset`)::

    DIR/images/<id>.ome.tif    vertical section with its spacing
    DIR/masks/<id>.ome.tif     labels 0 air, 1 stratum corneum, 2 epidermis, 3 dermis
    DIR/index.csv              id, subject   (subject groups the cross-validation folds)
    DIR/dataset.json           {"labels": [0, 1, 2, 3]}

Used by the napari plugin's *Save as training pair* widget and by
``skinoct layers dataset add``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io import (
    IMAGE_SUFFIXES,
    LABEL_VALUES,
    Image,
    read_image,
    read_mask,
    validate_labels,
    write_image,
    write_json,
    write_text,
)

__all__ = ["add_segmentation_outputs", "add_training_pair", "dataset_ids"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MASK_SUFFIX = "_mask.tif"
_METRICS_SUFFIX = ".metrics.json"


def _as_image(value, *, spacing_um, what: str, mask: bool) -> Image:
    if isinstance(value, Image):
        data = validate_labels(value.data, path=value.path) if mask else value.data
        image = value.with_data(np.asarray(data))
        return image if spacing_um is None else image.with_data(image.data, spacing_um=spacing_um)
    if isinstance(value, (str, Path)):
        reader = read_mask if mask else read_image
        return reader(value, spacing_um=spacing_um, axes="zx")
    data = np.asarray(value)
    if data.ndim != 2:
        raise InputError(
            f"a training pair is one vertical section (2-D); the {what} has shape {data.shape}"
        )
    if spacing_um is None:
        raise InputError(f"the {what} is an array: give spacing_um (dz, dx) in µm")
    if mask:
        data = validate_labels(data)
    return Image(data=data, spacing_um=spacing_um, axes="zx", spacing_source="override")


def _check_pair(image: Image, mask: Image, label_set: tuple[int, ...]) -> None:
    where = mask.path
    if image.data.ndim != 2:
        raise InputError(
            f"a training pair is one vertical section (2-D); got shape {image.shape}",
            path=image.path,
        )
    if image.shape != mask.shape:
        raise InputError(
            f"mask shape {mask.shape} differs from the image's {image.shape}", path=where
        )
    if not np.allclose(mask.spacing_um, image.spacing_um, rtol=1e-3):
        if mask.spacing_source != "default":
            raise InputError(
                f"mask spacing {mask.spacing_um} µm differs from the image's "
                f"{image.spacing_um} µm",
                path=where,
            )
    present = [int(v) for v in np.unique(mask.data)]
    foreign = [v for v in present if v not in label_set]
    if foreign:
        raise InputError(
            f"mask holds label(s) {foreign} outside the dataset's label set {list(label_set)}",
            path=where,
        )
    if len([v for v in present if v != 0]) == 0:
        raise InputError("mask holds no tissue label (1–3): nothing to learn from", path=where)


def _label_set(root: Path) -> tuple[int, ...]:
    spec = root / "dataset.json"
    if not spec.is_file():
        return LABEL_VALUES
    try:
        return tuple(int(v) for v in json.loads(spec.read_text(encoding="utf-8"))["labels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f'dataset.json must look like {{"labels": [0, 1, 2, 3]}} ({exc})',
                         path=spec) from None  # fmt: skip


def dataset_ids(root: str | Path) -> list[str]:
    """Ids of the images already in a dataset folder (``images/<id>.*``), sorted."""
    from skinoct.datasets._layers import image_stem

    folder = Path(root) / "images"
    if not folder.is_dir():
        return []
    return sorted(
        image_stem(p)
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)
    )


def _read_index(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        return ["id", "subject"], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [dict(r) for r in reader]
        fields = list(reader.fieldnames or [])
    if "id" not in fields or "subject" not in fields:
        raise InputError("index.csv needs the columns 'id' and 'subject'", path=path)
    return fields, rows


def _write_index(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["id"]):
        writer.writerow({k: row.get(k, "") for k in fields})
    write_text(path, buffer.getvalue())


def _check_text(value: str, what: str) -> str:
    value = str(value).strip()
    if not _SAFE_ID.match(value):
        raise InputError(
            f"{what} {value!r} must be 1–128 letters, digits, '.', '_' or '-' "
            "(it names files and CSV rows)"
        )
    return value


def add_training_pair(
    dataset: str | Path,
    image,
    mask,
    *,
    id: str | None = None,
    subject: str | None = None,
    spacing_um=None,
    overwrite: bool = False,
):
    """Add one vertical section and its (corrected) label mask to a training dataset.

    Parameters
    ----------
    dataset : str or Path
        Dataset folder; created with ``images/``, ``masks/``, ``index.csv`` and
        ``dataset.json`` when new.
    image : str, Path, Image or ndarray
        The section (``'zx'``).
    mask : str, Path, Image or ndarray
        Its labels 0–3, same shape and spacing.
    id : str, optional
        Name of the pair (default: the image's file stem). Letters, digits, ``._-``.
    subject : str, optional
        Who the section comes from; sections of one subject share a cross-validation
        fold. Default: the id (each section its own group).
    spacing_um : sequence of float, optional
        ``(dz, dx)`` in µm; required when ``image`` is an array, else overrides both
        files' spacing.
    overwrite : bool
        Replace a pair with the same id; without it an existing id is an error.

    Returns
    -------
    skinoct.layers.SectionRecord
        The id, written image and mask paths and the subject.

    Raises
    ------
    InputError
        Unreadable inputs, a 3-D image, different shapes or spacings, labels
        outside 0–3 or outside the dataset's ``dataset.json`` label set, a mask
        without tissue, an unsafe id or subject, or an existing id without
        ``overwrite``.

    Examples
    --------
    >>> add_training_pair("data", "s01.ome.tif", "s01_mask.tif", subject="P01")  # doctest: +SKIP
    SectionRecord(id='s01', ...)
    """
    from skinoct.datasets._layers import SectionRecord, image_stem

    root = Path(dataset)
    img = _as_image(image, spacing_um=spacing_um, what="image", mask=False)
    msk = _as_image(mask, spacing_um=spacing_um, what="mask", mask=True)
    if id is None:
        if img.path is None:
            raise InputError("give an id for an image that is not a file")
        id = image_stem(img.path)
    id = _check_text(id, "id")
    subject = _check_text(subject if subject is not None else id, "subject")
    labels = _label_set(root)
    _check_pair(img, msk, labels)
    existing = dataset_ids(root)
    if id in existing and not overwrite:
        raise InputError(
            f"the dataset already holds a pair {id!r}; pass overwrite=True (--overwrite) "
            "to replace it",
            path=root,
        )
    fields, rows = _read_index(root / "index.csv")
    if not rows and existing:  # a dataset without index.csv: each section was its own subject
        rows = [{"id": i, "subject": i} for i in existing]
    for sub in ("images", "masks"):
        for old in (root / sub).glob(f"{id}.*") if id in existing else ():
            if image_stem(old) == id:
                old.unlink()
    image_path = write_image(root / "images" / f"{id}.ome.tif", img.with_data(np.asarray(img.data)))
    mask_path = write_image(
        root / "masks" / f"{id}.ome.tif",
        msk.data.astype(np.uint8),
        spacing_um=img.spacing_um,
        axes="zx",
    )
    rows = [r for r in rows if r.get("id") != id] + [{"id": id, "subject": subject}]
    _write_index(root / "index.csv", fields, rows)
    if not (root / "dataset.json").is_file():
        write_json(root / "dataset.json", {"labels": list(labels)})
    return SectionRecord(id=id, image=image_path, mask=mask_path, subject=subject)


def add_segmentation_outputs(
    dataset: str | Path,
    folder: str | Path,
    *,
    subject: str | None = None,
    overwrite: bool = False,
) -> list:
    """Add every section of a ``skinoct layers segment`` output folder to a dataset.

    Each ``<stem>.metrics.json`` names the segmented image; its ``<stem>_mask.tif``
    (as predicted, or as corrected since) becomes the mask.

    Returns
    -------
    list of skinoct.layers.SectionRecord

    Raises
    ------
    InputError
        A folder without segmentation outputs, a missing source image or mask, and
        everything :func:`add_training_pair` raises.
    """
    folder = Path(folder)
    metrics = sorted(folder.glob(f"*{_METRICS_SUFFIX}")) if folder.is_dir() else []
    if not metrics:
        raise InputError(
            f"no <stem>{_METRICS_SUFFIX} here: not a 'skinoct layers segment' output folder",
            path=folder,
        )
    records = []
    for meta in metrics:
        stem = meta.name[: -len(_METRICS_SUFFIX)]
        try:
            source = json.loads(meta.read_text(encoding="utf-8")).get("image")
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {meta.name}: {exc}", path=meta) from None
        if not source or not Path(source).is_file():
            raise InputError(f"the segmented image {source!r} is not found", path=meta)
        mask = folder / f"{stem}{_MASK_SUFFIX}"
        if not mask.is_file():
            raise InputError(f"no {mask.name} beside {meta.name}", path=folder)
        records.append(
            add_training_pair(dataset, source, mask, id=stem, subject=subject, overwrite=overwrite)
        )
    return records
