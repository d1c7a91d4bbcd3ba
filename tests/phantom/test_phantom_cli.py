"""``skinoct phantom …`` end to end: layouts, readers of the other packages, determinism."""

import re
from pathlib import Path

import numpy as np
import pytest

from skinoct.io import read_image, read_mask, read_volume

SECTIONS = ["--width", "200", "--depth", "160", "--sections-per-subject", "2"]
TILES = ["--size", "64", "--tiles-per-volume", "3"]
VOLUME = ["--size", "140", "24", "40"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_sections_layout_and_ground_truth(run_cli, tmp_path):
    code, out, err = run_cli("phantom", "sections", "--n", "3", "--out", tmp_path, "--seed", "2",
                             "--spacing", "2", "1", "--site", "forearm",
                             "--disruption-fraction", "1", *SECTIONS)  # fmt: skip
    assert code == 0, err
    assert "wrote 3 sections" in out
    index = (tmp_path / "index.csv").read_text().splitlines()
    header = index[0].split(",")
    assert header[:4] == ["id", "subject", "site", "seed"]
    assert {"disruption_x0_um", "disruption_x1_um", "tilt_deg", "noise"} <= set(header)
    rows = [dict(zip(header, line.split(","), strict=True)) for line in index[1:]]
    assert [r["subject"] for r in rows] == ["subj0001", "subj0001", "subj0002"]
    assert {r["site"] for r in rows} == {"forearm"}
    for r in rows:
        image = read_image(tmp_path / "images" / f"{r['id']}.ome.tif")
        mask = read_mask(tmp_path / "masks" / f"{r['id']}.ome.tif")
        assert image.axes == "zx" and image.spacing_um == (2.0, 1.0)
        assert image.shape == (80, 200) and mask.data.shape == (80, 200)
        assert float(r["disruption_x0_um"]) < float(r["disruption_x1_um"])  # fraction 1
        gt = np.genfromtxt(tmp_path / "ground_truth" / f"{r['id']}.csv", delimiter=",",
                           names=True)  # fmt: skip
        assert gt.dtype.names == ("x_um", "surface_um", "sc_junction_um", "dej_um")
        np.testing.assert_allclose(gt["x_um"], np.arange(200.0))
        # Labels against the written curves (4 decimals): rows above = ceil(b / dz).
        above = (mask.data <= 2).sum(axis=0)
        dej = gt["dej_um"]
        ok = np.isfinite(dej) & (np.abs(dej / 2 - np.round(dej / 2)) > 1e-3)
        np.testing.assert_array_equal(above[ok], np.ceil(dej[ok] / 2.0))


def test_sections_are_read_by_the_layers_dataset(run_cli, tmp_path):
    from skinoct.layers._data import discover_dataset

    assert run_cli("phantom", "sections", "--n", "4", "--out", tmp_path, *SECTIONS)[0] == 0
    dataset = discover_dataset(tmp_path)
    assert len(dataset) == 4 and dataset.grouped
    assert dataset.subjects.tolist() == ["subj0001", "subj0001", "subj0002", "subj0002"]
    assert dataset.label_values == (0, 1, 2, 3)


def test_enface_layout_with_raters_is_read_by_matrix(run_cli, tmp_path):
    code, out, err = run_cli("phantom", "enface", "--n", "5", "--out", tmp_path, "--raters", "6",
                             *TILES)  # fmt: skip
    assert code == 0, err
    tiles = (tmp_path / "tiles.csv").read_text().splitlines()
    assert tiles[0] == "tile_id,volume_id,subject,depth_um,row,col,q"
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[0] == "tile_id," + ",".join(f"rater_{i}" for i in range(1, 7)) + ",grade"
    from skinoct.matrix import read_tile_dataset

    data = read_tile_dataset(tmp_path, size=None)
    assert data.tiles.shape == (5, 3, 64, 64) and data.tiles.dtype == np.uint8
    assert data.raters == tuple(f"rater_{i}" for i in range(1, 7))
    assert sorted(set(data.table["subject"])) == ["subj00001", "subj00002"]


def test_enface_true_grades_match_q(run_cli, tmp_path):
    assert run_cli("phantom", "enface", "--n", "6", "--out", tmp_path, *TILES,
                   "--q-distribution", "cohort")[0] == 0  # fmt: skip
    q = np.genfromtxt(tmp_path / "tiles.csv", delimiter=",", names=True)["q"]
    grade = np.genfromtxt(tmp_path / "labels.csv", delimiter=",", names=True)["grade"]
    np.testing.assert_array_equal(grade, np.clip(np.floor(q + 0.5), 1, 4))


def test_volume_and_cohort_layouts(run_cli, tmp_path):
    code, _, err = run_cli("phantom", "volume", "--n", "2", "--out", tmp_path / "v",
                           "--spacing", "1", "1", "2", *VOLUME)  # fmt: skip
    assert code == 0, err
    vol = read_volume(tmp_path / "v" / "volumes" / "vol0001.ome.tif")
    assert vol.shape == (140, 24, 20) and vol.spacing_um == (1.0, 1.0, 2.0)
    assert read_volume(tmp_path / "v" / "masks" / "vol0001.ome.tif").shape == vol.shape
    code, out, err = run_cli("phantom", "cohort", "--n", "1", "--out", tmp_path / "c",
                             "--groups", "young,old_photoexposed", *VOLUME)  # fmt: skip
    assert code == 0, err
    assert "wrote 2 subjects" in out
    manifest = (tmp_path / "c" / "manifest.csv").read_text().splitlines()
    assert manifest == [
        "subject,group,volume,site",
        "S001,young,volumes/S001.ome.tif,face",
        "S002,old_photoexposed,volumes/S002.ome.tif,face",
    ]
    assert not (tmp_path / "c" / "masks").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["sections", "--n", "2", *SECTIONS],
        ["enface", "--n", "4", "--raters", "3", *TILES],
        ["volume", "--n", "1", *VOLUME],
        ["cohort", "--n", "1", "--groups", "old", *VOLUME],
    ],
    ids=["sections", "enface", "volume", "cohort"],
)
def test_same_seed_gives_byte_identical_files(run_cli, tmp_path, args):
    kind, rest = args[0], args[1:]
    for name in ("a", "b", "c"):
        seed = "9" if name != "c" else "10"
        code, _, err = run_cli("phantom", kind, "--out", tmp_path / name, "--seed", seed, *rest)
        assert code == 0, err
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert a.keys() == b.keys() and len(a) >= 4
    assert all(a[k] == b[k] for k in a)
    assert any(a[k] != c[k] for k in a)  # another seed, other data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sections", "--n", "2", "--site", "knee"], "--site must be one of"),
        (["sections", "--n", "0"], r"n must be in \[1,"),
        (["sections", "--n", "2", "--spacing", "0"], "--spacing must be positive"),
        (["sections", "--n", "2", "--disruption-fraction", "2"], "disruption_fraction"),
        (["enface", "--n", "2", "--raters", "-1"], "raters must be an integer"),
        (["enface", "--n", "2", "--q-distribution", "gauss"], "q_distribution"),
        (["volume", "--n", "1", "--size", "5", "10", "10"], r"size_um \(z\)"),
        (["cohort", "--groups", "young,teen", *VOLUME], "group must be one of"),
        (["volume", "--n", "1", "--noise", "9", *VOLUME], "noise must be a number in"),
    ],
)
def test_bad_options_exit_2_with_one_line(run_cli, tmp_path, args, message):
    code, _, err = run_cli("phantom", args[0], "--out", tmp_path / "x", *args[1:])
    assert code == 2
    assert "error:" in err and len(err.strip().splitlines()) == 1
    assert re.search(message, err)


def test_help_lists_the_commands(run_cli):
    code, out, _ = run_cli("phantom", "--help")
    assert code == 0
    for name in ("sections", "enface", "volume", "cohort"):
        assert name in out
