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


def test_volume_with_spacing_and_figures(run_cli, tmp_path, render):
    spacing = (0.5, 2.0, 1.5)

    def flat(depth):
        return lambda y, x: np.full(np.broadcast(y, x).shape, depth)

    volume = render((100, 12, 16), spacing, flat(5.2), flat(10.2), flat(30.2))
    path = tmp_path / "vol.npy"
    np.save(path, volume)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        "layers", "measure", path, "--spacing", "0.5", "2", "1.5", "--json", "--out", out,
        "--figures",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(stdout)
    assert record["spacing_um"] == [0.5, 2.0, 1.5]
    assert record["epidermis_thickness_um"]["mean"] == pytest.approx(25.0, abs=0.5)
    assert "dej_surface_area_ratio" in record and "density_per_mm2" in record["dermal_papillae"]
    assert (out / "vol.maps.png").stat().st_size > 0
    assert json.loads((out / "vol.metrics.json").read_text()) == record


def test_volume_with_two_spacing_values_is_an_error(run_cli, tmp_path):
    path = tmp_path / "vol.npy"
    np.save(path, np.ones((5, 5, 5), np.uint8))
    code, _, err = run_cli("layers", "measure", path, "--spacing", "0.5", "1.2")
    assert code == 2 and "vol.npy" in err and "spacing" in err


def test_entropy_option(run_cli, tmp_path, flat_mask):
    mask, spacing = flat_mask
    np.save(tmp_path / "m.npy", mask)
    ent = np.zeros(mask.shape)
    ent[100:125, 20:60] = 0.95  # around the DEJ at 56 µm (rows 112 ± 10)
    np.save(tmp_path / "e.npy", ent)
    flag = ["--entropy-band-um", "5", "--min-segment-um", "20"]
    code, out, err = run_cli(
        "layers", "measure", tmp_path / "m.npy", "--spacing", "0.5", "1.2",
        "--entropy", tmp_path / "e.npy", *flag, "--json",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    assert record["dej_uncertain_segments"] == [[pytest.approx(24.0), pytest.approx(70.8)]]
    # ±5 µm of the DEJ lies inside the 0.95 rows: 40 of 90 columns at 0.95
    assert record["dej_entropy_mean"] == pytest.approx(40 * 0.95 / 90)
    # the flagged stretch is 48 µm long: a 50 µm minimum drops it; a ±15 µm band dilutes it
    code, out, _ = run_cli(
        "layers", "measure", tmp_path / "m.npy", "--spacing", "0.5", "1.2",
        "--entropy", tmp_path / "e.npy", "--entropy-band-um", "5", "--min-segment-um", "50",
        "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["dej_uncertain_segments"] == []
    code, out, _ = run_cli(
        "layers", "measure", tmp_path / "m.npy", "--spacing", "0.5", "1.2",
        "--entropy", tmp_path / "e.npy", "--entropy-band-um", "15", "--min-segment-um", "20",
        "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["dej_entropy_mean"] == pytest.approx(40 * 0.95 * 25 / 61 / 90, rel=0.05)
    # a folder of maps named like the masks, for batches
    folder = tmp_path / "entropy"
    folder.mkdir()
    np.save(folder / "m.npy", ent)
    code, out, _ = run_cli(
        "layers", "measure", tmp_path / "m.npy", "--spacing", "0.5", "1.2",
        "--entropy", folder, *flag, "--json",
    )  # fmt: skip
    assert (
        code == 0 and json.loads(out)["dej_uncertain_segments"] == record["dej_uncertain_segments"]
    )


def test_batch_with_one_bad_mask_exit_1(run_cli, tmp_path, flat_mask):
    mask, _ = flat_mask
    np.save(tmp_path / "good.npy", mask)
    np.save(tmp_path / "bad.npy", np.zeros_like(mask))
    out = tmp_path / "out"
    code, _, err = run_cli(
        "layers", "measure", tmp_path / "good.npy", tmp_path / "bad.npy", "--spacing", "0.5",
        "1.2", "--out", out,
    )  # fmt: skip
    assert code == 1
    assert "bad.npy" in err and "1 of 2 failed" in err
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["name"]) == ["good"]
    assert not (out / "bad.metrics.json").exists()


def test_prominence_and_normal_options(run_cli, tmp_path, render):
    spacing = (1.0, 1.0)
    tilt = np.tan(np.deg2rad(20))
    mask = render(
        (200, 300),
        spacing,
        lambda x: 10 + tilt * x,
        lambda x: 20 + tilt * x,
        lambda x: 70 + tilt * x + 8 * np.cos(2 * np.pi * x / 50),
    )
    np.save(tmp_path / "t.npy", mask)
    args = ["layers", "measure", tmp_path / "t.npy", "--spacing", "1", "1", "--json"]
    _, out, _ = run_cli(*args)
    vertical = json.loads(out)
    _, out, _ = run_cli(*args, "--normal")
    normal = json.loads(out)
    assert normal["stratum_corneum_thickness_um"]["median"] == pytest.approx(
        10 * np.cos(np.deg2rad(20)), rel=0.02
    )
    assert vertical["stratum_corneum_thickness_um"]["median"] == pytest.approx(10, abs=1)
    assert vertical["dermal_papillae"]["count"] in (5, 6, 7)  # 6 periods
    _, out, _ = run_cli(*args, "--prominence", "20")
    assert json.loads(out)["dermal_papillae"]["count"] == 0


def test_figures_need_out(run_cli, tmp_path, flat_mask):
    np.save(tmp_path / "m.npy", flat_mask[0])
    code, _, err = run_cli("layers", "measure", tmp_path / "m.npy", "--figures")
    assert code == 2 and "--out" in err


def test_json_lines_for_several_masks_and_text_summary(run_cli, tmp_path, flat_mask):
    mask, _ = flat_mask
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", mask)
    paths = [tmp_path / "a.npy", tmp_path / "b.npy"]
    code, out, _ = run_cli("layers", "measure", *paths, "--spacing", "0.5", "1.2", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["file"] for r in lines] == [str(p) for p in paths]
    assert all(r["coverage"]["dej"] == 1.0 for r in lines)
    code, out, _ = run_cli("layers", "measure", paths[0], "--spacing", "0.5", "1.2")
    assert code == 0
    assert "epidermis_thickness_um" in out and "mean 46" in out


def test_enface_image_is_refused(run_cli, tmp_path, flat_mask):
    path = write_image(tmp_path / "enface.ome.tif", flat_mask[0], spacing_um=(1, 1), axes="yx")
    code, _, err = run_cli("layers", "measure", path)
    assert code == 2 and "en-face" in err


def test_entropy_folder_with_segment_outputs(run_cli, tmp_path, flat_mask):
    """'skinoct layers segment' writes <stem>_mask.tif and <stem>_entropy.tif side by side."""
    mask, spacing = flat_mask
    ent = np.zeros(mask.shape, np.float32)
    ent[100:125, 20:60] = 0.95
    for stem in ("s1", "s2"):
        write_image(tmp_path / f"{stem}_mask.tif", mask, spacing_um=spacing, axes="zx")
        write_image(tmp_path / f"{stem}_entropy.tif", ent, spacing_um=spacing, axes="zx")
    masks = [tmp_path / "s1_mask.tif", tmp_path / "s2_mask.tif"]
    code, out, err = run_cli("layers", "measure", *masks, "--entropy", tmp_path,
                             "--min-segment-um", "20", "--json")  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["dej_uncertain_segments"] for r in records] == [[[24.0, 70.8]]] * 2
    # a batch with one file as --entropy is ambiguous
    code, _, err = run_cli("layers", "measure", *masks, "--entropy", tmp_path / "s1_entropy.tif")
    assert code == 2 and "folder" in err
