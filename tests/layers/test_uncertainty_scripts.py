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
    args = argparse.Namespace(bands=[5.0, 10.0], min_segments=[20.0, 40.0], n=2,
                              n_calibration=3, test_seed=9000, quantile=0.9,
                              engine="torch", map="entropy")  # fmt: skip
    table = evaluate.band_sweep(bundled_layers, args)
    rows = [line for line in table.splitlines() if line.startswith(("| 5 ", "| 10 "))]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [(c[0], c[1]) for c in cells] == [("5", "20"), ("5", "40"), ("10", "20"), ("10", "40")]
    for c in cells:
        assert 0 <= float(c[2]) <= 1  # the calibrated threshold
        assert 0 <= float(c[-1]) <= 1  # the AUC
    assert "seeds 9000+" in table


def test_confusion_map_is_half_where_epidermis_and_dermis_tie(evaluate, bundled_layers):
    from types import SimpleNamespace

    # classes air, SC, epidermis, dermis; three pixels: a tie, dermis sure, epidermis 3:1
    p = np.array([[0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.4, 0.0, 0.75], [0.4, 1.0, 0.25]])
    result = SimpleNamespace(probabilities=p[:, None, :].astype(np.float32), entropy="H")
    conf = evaluate.uncertainty_map(result, bundled_layers, "confusion")
    np.testing.assert_allclose(conf[0], [0.5, 0.0, 0.25], atol=1e-6)
    assert evaluate.uncertainty_map(result, bundled_layers) == "H"  # entropy: as segmented
    # the sweep on the confusion map runs and says which map it used
    args = argparse.Namespace(bands=[10.0], min_segments=[40.0], n=2, n_calibration=3,
                              test_seed=9000, quantile=0.9, engine="torch",
                              map="confusion")  # fmt: skip
    table = evaluate.band_sweep(bundled_layers, args)
    assert "map `confusion`" in table and "| 10 | 40 |" in table


def test_calibrate_layers_stores_the_chosen_band(tmp_path, capsys):
    from skinoct.layers import dej_flag_settings, load_layers_model
    from skinoct.models import bundled_model_dir

    model_dir = shutil.copytree(bundled_model_dir("layers"), tmp_path / "model")
    script = import_script("calibrate_layers")
    args = ["--n", "3", "--band-um", "12", "--min-segment-um", "30", "--engine", "torch"]
    assert script.main([str(model_dir), *args]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    model = load_layers_model(model_dir)
    assert printed["entropy_band_um"] == 12.0 and printed["min_segment_um"] == 30.0
    assert printed["n_sections"] >= 1
    assert dej_flag_settings(model) == (printed["dej_entropy_threshold"], 12.0, 30.0)
    # the defaults keep the model's current band and length
    assert script.main([str(model_dir), "--n", "3", "--engine", "torch", "--dry-run"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["entropy_band_um"], again["min_segment_um"]) == (12.0, 30.0)
