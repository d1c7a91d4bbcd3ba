"""scripts/calibrate_layers.py, evaluate_uncertainty.py: the DEJ band goes with the threshold."""

import argparse
import json
import shutil

import numpy as np
import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def evaluate():
    return import_script("evaluate_uncertainty")


@pytest.fixture(scope="module")
def bundled_layers():
    from skinoct.layers import load_layers_model

    return load_layers_model()


def test_auc_counts_ordered_pairs_with_ties_half(evaluate):
    assert evaluate._auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert evaluate._auc(np.array([1.0]), np.array([1.0])) == 0.5
    # 2 of the 4 pairs ordered, none tied; a NaN score (no DEJ) ranks lowest
    assert evaluate._auc(np.array([2.0, np.nan]), np.array([1.0, 3.0])) == 0.25


def test_band_sweep_reports_one_row_per_band(evaluate, bundled_layers):
    args = argparse.Namespace(bands=[5.0, 10.0], n=2, n_calibration=3, test_seed=9000,
                              quantile=0.9, engine="torch")  # fmt: skip
    table = evaluate.band_sweep(bundled_layers, args)
    rows = [line for line in table.splitlines() if line.startswith("| 5 ") or
            line.startswith("| 10 ")]  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[1]) <= 1  # the calibrated threshold
        assert 0 <= float(cells[-1]) <= 1  # the AUC
    assert "seeds 9000+" in table


def test_calibrate_layers_stores_the_chosen_band(tmp_path, capsys):
    from skinoct.layers import dej_flag_settings, load_layers_model
    from skinoct.models import bundled_model_dir

    model_dir = shutil.copytree(bundled_model_dir("layers"), tmp_path / "model")
    script = import_script("calibrate_layers")
    assert script.main([str(model_dir), "--n", "3", "--band-um", "12", "--engine", "torch"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    model = load_layers_model(model_dir)
    assert printed["entropy_band_um"] == 12.0 and printed["n_sections"] >= 1
    assert dej_flag_settings(model) == (printed["dej_entropy_threshold"], 12.0)
    # the default keeps the model's current band
    assert script.main([str(model_dir), "--n", "3", "--engine", "torch", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["entropy_band_um"] == 12.0
