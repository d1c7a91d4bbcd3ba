"""Helpers of scripts/layers_families.py and scripts/layers_phantom_data.py."""

import csv

import numpy as np
import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def scripts():
    return import_script("layers_families"), import_script("layers_phantom_data")


def test_dej_error_is_the_mean_absolute_depth_difference(scripts):
    families, _ = scripts
    pred = np.zeros((50, 4), np.uint8)
    pred[30:, :] = 3  # dermis from row 30: estimated DEJ (30 - 0.5) * 2 µm = 59 µm
    truth = np.array([59.0, 60.0, 55.0, np.nan])  # errors 0, 1, 4; the NaN column is out of view
    assert families.dej_error_um(pred, truth, 2.0) == pytest.approx(5.0 / 3.0)
    assert np.isnan(families.dej_error_um(pred, np.full(4, np.nan), 2.0))


def test_family_datasets_combine_with_prefixed_ids_and_subjects(scripts, tmp_path):
    _, data = scripts
    parts = data.write_family_datasets(tmp_path / "fam", ["standard", "artefact-heavy"],
                                       n_per_family=3, sections_per_subject=2, seed=1)  # fmt: skip
    out = data.combine_datasets(parts, tmp_path / "all", limit=2)
    with open(out / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["standard_sec00001", "standard_sec00002",
                                       "artefact-heavy_sec00001", "artefact-heavy_sec00002"]
    assert {r["family"] for r in rows} == {"standard", "artefact-heavy"}
    assert rows[0]["subject"] == "standard_subj0001"
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(
        f"{r['id']}.ome.tif" for r in rows
    )


def test_markdown_describes_models_by_their_label(scripts):
    families, _ = scripts
    score = {"n_sections": 2, "mean_dice": 0.9, "stratum_corneum": 0.8, "epidermis": 0.9,
             "dermis": 1.0, "dej_error_um": 3.25}  # fmt: skip
    results = {
        "runs": {"without standard": {"test": {"standard": score}}},
        "models": {"new": {"path": "/tmp/x", "weights_sha256": "ab" * 32,
                           "test": {"standard": score}},
                   "old": {"path": "/tmp/y", "weights_sha256": "cd" * 32,
                           "test": {"standard": score}}},
        "labels": {"new": "the shipped bundled model"},
        "budget": {"per_family_train": 4, "per_family_test": 2, "epochs": 1,
                   "patches_per_section": 1, "batch_size": 2, "lr": 0.001, "init": None,
                   "command": "python scripts/layers_families.py"},
    }  # fmt: skip
    text = families.markdown(results)
    assert "| standard (held out) | 2 | **0.900** | 0.800 | 0.900 | 1.000 | 3.2 |" in text
    assert "Model `new` (the shipped bundled model, sha256 `abababababab…`)" in text
    assert "Model `old` (`/tmp/y`, sha256" in text  # no label: the path
    assert "start from random weights" in text


def test_lofo_table_reads_the_held_out_family_and_the_reference(scripts):
    families, _ = scripts

    def s(dice, dej=10.0):
        return {"n_sections": 2, "mean_dice": dice, "stratum_corneum": dice,
                "epidermis": dice, "dermis": dice, "dej_error_um": dej}  # fmt: skip

    lofo = {"path": "/m", "weights_sha256": "ef" * 32,
            "test": {"standard": s(0.9), "dark-sc-low-contrast": s(0.5, 40.0),
                     "artefact-heavy": s(0.7)}}  # fmt: skip
    results = {
        "runs": {},
        "lofo": {"dark-sc-low-contrast": lofo},
        "lofo_reference": "new",
        "models": {"new": {"path": "/n", "weights_sha256": "ab" * 32,
                           "test": {"dark-sc-low-contrast": s(0.75)}}},
        "labels": {},
        "budget": {"per_family_test": 2, "command": "python scripts/layers_families.py"},
    }  # fmt: skip
    text = families.markdown(results)
    # held-out family's scores, the mean over the two families it trained on, the reference
    row = "| dark-sc-low-contrast | **0.500** | 0.500 | 0.500 | 0.500 | 40.0 | 0.800 | 0.750 |"
    assert row in text
    assert "in-domain `new`, same family" in text
    assert "trained by this script" not in text  # no own runs
    assert "seeds 200–203" in text


def test_a_subset_of_families_renders_the_same_sections(scripts, tmp_path):
    # Leave-one-family-out trainings reuse the sections of the all-families training.
    _, data = scripts
    full = data.write_family_datasets(tmp_path / "all", ["standard", "artefact-heavy"],
                                      n_per_family=1, sections_per_subject=1, seed=2)  # fmt: skip
    subset = data.write_family_datasets(tmp_path / "one", ["artefact-heavy"], n_per_family=1,
                                        sections_per_subject=1, seed=2)  # fmt: skip
    a = (full["artefact-heavy"] / "images" / "sec00001.ome.tif").read_bytes()
    b = (subset["artefact-heavy"] / "images" / "sec00001.ome.tif").read_bytes()
    assert a == b


def test_family_datasets_of_one_body_site(scripts, tmp_path):
    # train_layers_bundled --palm-per-family: thick-SC sections in every family's look
    _, data = scripts
    parts = data.write_family_datasets(tmp_path / "palm", ["standard", "artefact-heavy"],
                                       n_per_family=2, sections_per_subject=1, seed=54,
                                       site="palm")  # fmt: skip
    for family, root in parts.items():
        with open(root / "index.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 2 and {r["site"] for r in rows} == {"palm"}
        assert {r["family"] for r in rows} == {family}
        assert min(float(r["sc_thickness_um"]) for r in rows) >= 40  # face SC: 10-20 µm


def test_bundled_training_refuses_an_unknown_family(scripts, tmp_path, capsys):
    train_layers_bundled = import_script("train_layers_bundled")

    with pytest.raises(SystemExit) as exc:
        train_layers_bundled.main(["--families", "standard,nope", "--work", str(tmp_path),
                                   "--out", str(tmp_path / "m")])  # fmt: skip
    assert exc.value.code == 2
    assert "unknown families ['nope']" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing rendered


@pytest.mark.slow
def test_bundled_training_passes_the_depth_to_the_network(scripts, tmp_path):
    train_layers_bundled = import_script("train_layers_bundled")

    out = tmp_path / "m"
    code = train_layers_bundled.main(
        ["--families", "standard", "--per-family", "2", "--sections", "1", "--folds", "0",
         "--epochs", "1", "--batch-size", "2", "--patches-per-section", "1", "--levels", "6",
         "--device", "cpu", "--workers", "0", "--work", str(tmp_path / "w"), "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    from skinoct.layers import NetworkSpec, load_layers_model

    model = load_layers_model(out)
    assert model.spec == NetworkSpec().with_levels(6)
    assert "levels" in model.manifest["training"]["recipe"]["overridden"]


def test_another_block_name_replaces_only_that_block(scripts, tmp_path):
    families, _ = scripts
    doc = tmp_path / "doc.md"
    first, second = families.markers(), families.markers("layers_families_next")
    doc.write_text("\n".join([first[0], "old table", first[1], second[0], "x", second[1]]))
    families.update_doc(doc, "new table", "layers_families_next")
    text = doc.read_text()
    assert "old table" in text and "new table" in text and "\nx\n" not in text


def test_plain_look_datasets_can_mark_the_disrupted_dej_indeterminate(scripts, tmp_path):
    from skinoct.io import INDETERMINATE, read_mask

    _, data = scripts
    spec = data.DatasetSpec(n_subjects=1, sections_per_subject=2, seed=5,
                            disruption_fraction=1.0, indeterminate_um=10.0)  # fmt: skip
    root = data.write_phantom_dataset(tmp_path / "plain", spec)
    masks = [read_mask(p, allow_indeterminate=True).data for p in (root / "masks").iterdir()]
    assert all(INDETERMINATE in m for m in masks if 3 in m)
    assert any(3 in m for m in masks)


def test_install_refuses_a_model_without_its_own_uncertainty_calibration(scripts, tmp_path):
    import json

    families, _ = scripts
    model = tmp_path / "cand"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"task": "layers"}), encoding="utf-8")
    problem = families.install_problem("cand", {"cand": model})
    assert "no calibrated DEJ-uncertainty threshold" in problem
    assert f"calibrate_layers.py {model}" in problem
    assert "not one of the --model names (cand)" in families.install_problem("x", {"cand": model})
    assert "cannot read the model manifest" in families.install_problem(
        "gone", {"gone": tmp_path / "missing"}
    )
    def manifest(calibrated_for):
        calibration = {"dej_entropy_threshold": 0.14, "weights_sha256": calibrated_for}
        text = json.dumps({"task": "layers", "weights_sha256": "ab" * 32,
                           "uncertainty": calibration})  # fmt: skip
        (model / "model.json").write_text(text, encoding="utf-8")

    manifest("cd" * 32)  # a threshold copied from another model's manifest
    assert "calibrated for other weights" in families.install_problem("cand", {"cand": model})
    manifest("ab" * 32)
    assert families.install_problem("cand", {"cand": model}) is None
    with pytest.raises(SystemExit) as exc:  # argparse's exit code 2, before any scoring
        families.main(["--work", str(tmp_path / "w"), "--install", "x",
                       "--model", f"cand={model}"])  # fmt: skip
    assert exc.value.code == 2


def test_paired_comparison_resamples_subjects_and_counts_sections(scripts):
    """Known differences: family f1 gains exactly 0.02 on every section (interval
    collapses to it); in f2 one subject gains 0.1, the other loses 0.1, so the interval
    spans both and contains 0; the DEJ change is the median of the per-section ones."""
    families, _ = scripts

    def sections(dice, dej):
        return {"sections": [{"id": f"s{i}", "mean_dice": d, "dej_error_um": e}
                             for i, (d, e) in enumerate(zip(dice, dej, strict=True))]}  # fmt: skip

    first = {"f1": sections([0.5, 0.6, 0.7, 0.8], [10, 10, 10, 10]),
             "f2": sections([0.5, 0.5, 0.5, 0.5], [10, 10, 10, 10])}  # fmt: skip
    second = {"f1": sections([0.52, 0.62, 0.72, 0.82], [9, 8, 12, 10]),
              "f2": sections([0.6, 0.6, 0.4, 0.4], [10, 10, 10, 10])}  # fmt: skip
    subjects = {f: {"s0": "a", "s1": "a", "s2": "b", "s3": "b"} for f in ("f1", "f2")}
    out = families.paired_comparison(first, second, subjects, names=("A", "B"), resamples=500)
    f1, f2 = out["families"]["f1"], out["families"]["f2"]
    assert f1["mean_dice_diff"] == pytest.approx(0.02)
    assert f1["ci95"] == pytest.approx([0.02, 0.02])
    assert f1["second_better"] == 4 and f1["n_subjects"] == 2
    assert f1["median_dej_error_diff_um"] == pytest.approx(-0.5)  # changes -1, -2, +2, 0
    assert f2["mean_dice_diff"] == pytest.approx(0.0, abs=1e-12)
    assert f2["ci95"][0] == pytest.approx(-0.1) and f2["ci95"][1] == pytest.approx(0.1)
    assert f2["second_better"] == 2
    text = "\n".join(families.paired_markdown(out))
    assert "| f1 | 4 (2) | +0.020 | +0.020 to +0.020 | 4 / 4 | -0.5 |" in text
