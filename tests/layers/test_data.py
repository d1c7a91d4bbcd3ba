import json

import numpy as np
import pytest
from _layers_synthetic import synthetic_section, write_dataset

from skinoct.errors import InputError
from skinoct.io import normalize_intensity, write_image
from skinoct.layers import discover_dataset, image_stem
from skinoct.layers._data import prepare_section


@pytest.mark.parametrize(
    ("name", "stem"),
    [("a.ome.tif", "a"), ("a.OME.TIFF", "a"), ("sec_1.tif", "sec_1"), ("x.y.npy", "x.y")],
)
def test_image_stem(name, stem):
    assert image_stem(name) == stem


def test_discover_matches_stems_and_reads_subjects(dataset_dir):
    ds = discover_dataset(dataset_dir)
    assert len(ds) == 6 and ds.grouped
    assert ds.ids == sorted(ds.ids)
    assert ds.label_values == (0, 1, 2, 3) and ds.tissue_values == (1, 2, 3)
    assert set(ds.subjects) == {"subj0", "subj1", "subj2"}
    for r in ds.records:
        assert r.image.parent.name == "images" and r.mask.parent.name == "masks"
        assert image_stem(r.image) == image_stem(r.mask) == r.id


def test_without_index_each_section_is_its_own_group(tmp_path):
    root = write_dataset(tmp_path, n=3)
    (root / "index.csv").unlink()
    ds = discover_dataset(root)
    assert not ds.grouped and list(ds.subjects) == ds.ids


def test_mask_without_image_is_an_error(tmp_path):
    root = write_dataset(tmp_path, n=2)
    (root / "images" / "s01.ome.tif").unlink()
    with pytest.raises(InputError, match=r"1 mask\(s\) without an image: s01"):
        discover_dataset(root)


def test_image_without_mask_is_left_out_with_a_warning(tmp_path):
    root = write_dataset(tmp_path, n=3)
    (root / "masks" / "s02.ome.tif").unlink()
    with pytest.warns(UserWarning, match="without a mask are left out: s02"):
        ds = discover_dataset(root)
    assert ds.ids == ["s00", "s01"]


@pytest.mark.parametrize(
    ("index", "match"),
    [
        ("name,group\ns00,a\n", "columns 'id' and 'subject'"),
        ("id,subject\ns00,a\n", r"no subject for 1 section\(s\): s01"),
    ],
)
def test_bad_index_csv(tmp_path, index, match):
    root = write_dataset(tmp_path, n=2)
    (root / "index.csv").write_text(index)
    with pytest.raises(InputError, match=match):
        discover_dataset(root)


def test_missing_folders(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover_dataset(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no masks/ folder"):
        discover_dataset(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [("{}", "dataset.json must look like"), ('{"labels": [0, 7]}', "unknown class set")],
)
def test_bad_dataset_json(tmp_path, text, match):
    root = write_dataset(tmp_path, n=2)
    (root / "dataset.json").write_text(text)
    with pytest.raises(InputError, match=match):
        discover_dataset(root)


def test_partial_label_set_is_read(tmp_path):
    root = write_dataset(tmp_path, n=2, labels=[0, 2, 3])
    ds = discover_dataset(root)
    assert ds.label_values == (0, 2, 3) and ds.tissue_values == (2, 3)


def test_prepare_section_resamples_to_the_model_grid(dataset_dir):
    ds = discover_dataset(dataset_dir)
    sec = prepare_section(
        ds.records[0],
        label_values=(0, 1, 2, 3),
        model_spacing_um=(1.0, 2.0),
        normalize=normalize_intensity,
    )
    assert sec.image.shape == sec.target.shape == (64, 48)  # 64 x 96 at 1 µm -> 1 x 2 µm
    assert sec.image.dtype == np.float32
    # Normalised: the 0.5 and 99.5 percentiles map to about 0 and 1.
    assert -0.5 < np.percentile(sec.image, 1) < 0.3 and 0.7 < np.percentile(sec.image, 99) < 1.5
    assert set(np.unique(sec.target)) == {0, 1, 2, 3}


def test_prepare_section_maps_a_partial_label_set_to_class_indices(tmp_path):
    root = write_dataset(tmp_path, n=1, labels=[0, 2, 3])
    ds = discover_dataset(root)
    sec = prepare_section(
        ds.records[0],
        label_values=ds.label_values,
        model_spacing_um=(1.0, 1.0),
        normalize=normalize_intensity,
    )
    from skinoct.io import read_mask

    mask = read_mask(ds.records[0].mask).data
    np.testing.assert_array_equal(sec.target, np.searchsorted([0, 2, 3], mask))


def test_prepare_section_rejects_labels_outside_the_declared_set(tmp_path):
    root = write_dataset(tmp_path, n=1)
    (root / "dataset.json").write_text(json.dumps({"labels": [0, 2, 3]}))
    ds = discover_dataset(root)
    with pytest.raises(InputError, match=r"label\(s\) \[1\] outside the dataset's label set"):
        prepare_section(
            ds.records[0],
            label_values=ds.label_values,
            model_spacing_um=(1.0, 1.0),
            normalize=normalize_intensity,
        )


def test_prepare_section_rejects_mismatched_pairs(tmp_path):
    root = write_dataset(tmp_path, n=1)
    rng = np.random.default_rng(1)
    _, mask = synthetic_section(rng, (60, 96))
    write_image(root / "masks" / "s00.ome.tif", mask, spacing_um=(1.0, 1.0), axes="zx")
    ds = discover_dataset(root)
    with pytest.raises(InputError, match="mask shape"):
        prepare_section(
            ds.records[0],
            label_values=(0, 1, 2, 3),
            model_spacing_um=(1.0, 1.0),
            normalize=normalize_intensity,
        )
    _, mask = synthetic_section(rng, (64, 96))
    write_image(root / "masks" / "s00.ome.tif", mask, spacing_um=(2.0, 1.0), axes="zx")
    with pytest.raises(InputError, match="mask spacing"):
        prepare_section(
            ds.records[0],
            label_values=(0, 1, 2, 3),
            model_spacing_um=(1.0, 1.0),
            normalize=normalize_intensity,
        )
