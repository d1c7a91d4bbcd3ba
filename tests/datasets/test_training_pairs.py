"""add_training_pair / `skinoct layers dataset add`: the layout `layers train` reads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from skinoct.datasets import add_segmentation_outputs, add_training_pair, dataset_ids
from skinoct.errors import InputError
from skinoct.io import read_image, read_mask, write_image, write_json
from skinoct.layers import discover_dataset

SPACING = (1.0, 2.0)


def _pair(seed: int = 0, shape=(48, 40)):
    rng = np.random.default_rng(seed)
    z = np.arange(shape[0])[:, None] * np.ones(shape[1], int)[None]
    mask = np.select([z < 5, z < 9, z < 25], [0, 1, 2], 3).astype(np.uint8)
    image = (mask.astype(np.float32) * 300 + rng.normal(0, 20, shape) + 100).astype(np.float32)
    return image, mask


def _files(tmp_path, name="s01", seed=0, spacing=SPACING):
    image, mask = _pair(seed)
    img = write_image(tmp_path / "in" / f"{name}.ome.tif", image, spacing_um=spacing, axes="zx")
    msk = write_image(tmp_path / "in" / f"{name}_mask.tif", mask, spacing_um=spacing, axes="zx")
    return img, msk, image, mask


def _index(root):
    with open(root / "index.csv", newline="") as fh:
        return {r["id"]: r["subject"] for r in csv.DictReader(fh)}


def test_pairs_land_in_the_layout_layers_train_reads(tmp_path):
    img, msk, image, mask = _files(tmp_path)
    root = tmp_path / "data"
    record = add_training_pair(root, img, msk, subject="P01")
    assert record.id == "s01" and record.subject == "P01"
    add_training_pair(root, *_pair(1), id="s02", subject="P02", spacing_um=SPACING)
    found = discover_dataset(root)
    assert found.ids == ["s01", "s02"] and found.grouped
    assert found.subjects.tolist() == ["P01", "P02"]
    assert found.label_values == (0, 1, 2, 3)
    assert json.loads((root / "dataset.json").read_text()) == {"labels": [0, 1, 2, 3]}
    back = read_image(root / "images" / "s01.ome.tif")
    np.testing.assert_array_equal(back.data, image)
    assert back.spacing_um == SPACING and back.axes == "zx"
    stored = read_mask(root / "masks" / "s01.ome.tif")
    np.testing.assert_array_equal(stored.data, mask)
    assert stored.spacing_um == SPACING


def test_existing_pairs_are_never_overwritten_silently(tmp_path):
    img, msk, image, mask = _files(tmp_path)
    root = tmp_path / "data"
    add_training_pair(root, img, msk, subject="P01")
    before = (root / "masks" / "s01.ome.tif").read_bytes()
    corrected = mask.copy()
    corrected[30:, :5] = 2
    with pytest.raises(InputError, match="already holds a pair 's01'.*overwrite"):
        add_training_pair(root, image, corrected, id="s01", spacing_um=SPACING)
    assert (root / "masks" / "s01.ome.tif").read_bytes() == before
    add_training_pair(root, image, corrected, id="s01", subject="P09", spacing_um=SPACING,
                      overwrite=True)  # fmt: skip
    np.testing.assert_array_equal(read_mask(root / "masks" / "s01.ome.tif").data, corrected)
    assert _index(root) == {"s01": "P09"}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("shape", "mask shape"),
        ("labels", "outside the skinoct labels"),
        ("spacing", "mask spacing"),
        ("volume", "one vertical section"),
        ("empty", "no tissue"),
        ("id", "must be 1–128"),
    ],
)
def test_bad_pairs_are_refused_and_nothing_is_written(tmp_path, change, match):
    image, mask = _pair()
    kwargs = {"id": "s01", "spacing_um": SPACING}
    if change == "shape":
        mask = mask[:-1]
    elif change == "labels":
        mask = mask + 1
    elif change == "spacing":
        img = write_image(tmp_path / "a.ome.tif", image, spacing_um=SPACING, axes="zx")
        msk = write_image(tmp_path / "b.ome.tif", mask, spacing_um=(1.0, 1.0), axes="zx")
        image, mask, kwargs = img, msk, {}
    elif change == "volume":
        image = np.stack([image, image])
        mask = np.stack([mask, mask])
    elif change == "empty":
        mask = np.zeros_like(mask)
    elif change == "id":
        kwargs["id"] = "../evil"
    with pytest.raises(InputError, match=match):
        add_training_pair(tmp_path / "data", image, mask, **kwargs)
    assert dataset_ids(tmp_path / "data") == []


def test_partial_label_set_of_dataset_json_is_enforced(tmp_path):
    root = tmp_path / "data"
    write_json(root / "dataset.json", {"labels": [0, 2, 3]})
    image, mask = _pair()
    with pytest.raises(InputError, match=r"outside the dataset's label set \[0, 2, 3\]"):
        add_training_pair(root, image, mask, id="a", spacing_um=SPACING)
    add_training_pair(root, image, np.where(mask == 1, 2, mask), id="a", spacing_um=SPACING)
    assert discover_dataset(root).label_values == (0, 2, 3)


def test_a_dataset_without_index_keeps_its_sections_as_own_subjects(tmp_path):
    root = tmp_path / "data"
    image, mask = _pair()
    write_image(root / "images" / "old.tif", image, spacing_um=SPACING, axes="zx")
    write_image(root / "masks" / "old.tif", mask, spacing_um=SPACING, axes="zx")
    add_training_pair(root, image, mask, id="new", subject="P1", spacing_um=SPACING)
    assert _index(root) == {"old": "old", "new": "P1"}
    assert discover_dataset(root).ids == ["new", "old"]


def test_cli_adds_a_pair_and_a_segment_output_folder(tmp_path, run_cli):
    img, msk, _, _ = _files(tmp_path)
    root = tmp_path / "data"
    code, out, _ = run_cli("layers", "dataset", "add", img, msk, "--to", root, "--subject", "P1")
    assert code == 0 and "added s01 (subject P1)" in out
    code, _, err = run_cli("layers", "dataset", "add", img, msk, "--to", root)
    assert code == 2 and "--overwrite" in err
    # A `layers segment` output folder: <stem>.metrics.json names the image.
    seg = tmp_path / "seg"
    img2, _, _, mask2 = _files(tmp_path, "s02", seed=2)
    write_image(seg / "s02_mask.tif", mask2, spacing_um=SPACING, axes="zx")
    write_json(seg / "s02.metrics.json", {"image": str(img2)})
    code, out, _ = run_cli("layers", "dataset", "add", seg, "--to", root, "--subject", "P2")
    assert code == 0 and "added s02" in out
    assert _index(root) == {"s01": "P1", "s02": "P2"}
    code, _, err = run_cli("layers", "dataset", "add", tmp_path / "in", "--to", root)
    assert code == 2 and "not a 'skinoct layers segment' output folder" in err
    with pytest.raises(InputError, match="not found"):
        write_json(seg / "s03.metrics.json", {"image": str(tmp_path / "gone.tif")})
        add_segmentation_outputs(root, seg, overwrite=True)
