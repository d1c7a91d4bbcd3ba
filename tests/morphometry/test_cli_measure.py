"""``skinoct layers measure`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinoct.io import write_image


def test_json_single_mask(run_cli, tmp_path, flat_mask):
    mask, spacing = flat_mask
    path = tmp_path / "flat.npy"
    np.save(path, mask)
    code, out, err = run_cli("layers", "measure", path, "--spacing", "0.5", "1.2", "--json")
    assert code == 0, err
    record = json.loads(out)  # exactly one JSON object
    assert record["spacing_um"] == [0.5, 1.2]
    assert record["epidermis_thickness_um"]["mean"] == pytest.approx(46.0, abs=0.5)
    assert record["stratum_corneum_thickness_um"]["mean"] == pytest.approx(6.0, abs=0.5)


def test_spacing_overrides_metadata(run_cli, tmp_path, flat_mask):
    mask, _ = flat_mask
    path = write_image(tmp_path / "flat.ome.tif", mask, spacing_um=(1.0, 1.0), axes="zx")
    code, out, _ = run_cli("layers", "measure", path, "--json")
    assert json.loads(out)["epidermis_thickness_um"]["mean"] == pytest.approx(92.0, abs=1.0)
    code, out, _ = run_cli("layers", "measure", path, "--spacing", "0.5", "1.2", "--json")
    assert code == 0
    assert json.loads(out)["epidermis_thickness_um"]["mean"] == pytest.approx(46.0, abs=0.5)


def test_out_writes_json_and_csv(run_cli, tmp_path, flat_mask):
    mask, spacing = flat_mask
    paths = []
    for name in ("a", "b"):
        paths.append(write_image(tmp_path / f"{name}.ome.tif", mask, spacing_um=spacing, axes="zx"))
    out = tmp_path / "out"
    code, _, err = run_cli("layers", "measure", *paths, "--out", out, "--figures")
    assert code == 0, err
    for name in ("a", "b"):
        record = json.loads((out / f"{name}.metrics.json").read_text())
        assert record["coverage"]["dej"] == 1.0
        assert (out / f"{name}.profile.png").stat().st_size > 0
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["name"]) == ["a", "b"]
    assert table["epidermis_thickness_um_mean"].to_numpy() == pytest.approx([46.0, 46.0], abs=0.5)


def test_foreign_labels_exit_2(run_cli, tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.full((20, 20), 9, np.uint8))
    code, out, err = run_cli("layers", "measure", path, "--spacing", "1", "1")
    assert code == 2
    assert "bad.npy" in err and "outside the skinoct labels" in err
    assert len(err.strip().splitlines()) == 1


def test_empty_mask_exit_2(run_cli, tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((20, 20), np.uint8))
    code, _, err = run_cli("layers", "measure", path, "--spacing", "1", "1")
    assert code == 2
    assert "empty.npy" in err and "no skin" in err
