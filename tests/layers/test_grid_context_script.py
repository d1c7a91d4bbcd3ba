"""scripts/layers_grid_context.py: one initial model fine-tuned at several model grids."""

import argparse
import json

import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def script():
    return import_script("layers_grid_context")


def test_init_at_grid_declares_the_grid_and_keeps_the_weights(script, tiny_model_dir, tmp_path):
    from skinoct.layers import load_layers_model

    dest = script.init_at_grid(tiny_model_dir, (2.0, 4.0), tmp_path / "init")
    assert (dest / "model.safetensors").read_bytes() == (
        tiny_model_dir / "model.safetensors").read_bytes()  # fmt: skip
    manifest = json.loads((dest / "model.json").read_text())
    assert manifest["preprocessing"]["spacing_um"] == [2.0, 4.0]
    assert "uncertainty" not in manifest  # a threshold calibrated on another grid
    assert load_layers_model(dest).spacing_um == (2.0, 4.0)


@pytest.mark.parametrize(
    ("text", "arm", "label"),
    [("1,2", (1.0, 2.0, None), "grid 1x2 um"), ("2,4@7", (2.0, 4.0, 7), "grid 2x4 um, 7 levels")],
)
def test_arms_are_a_grid_and_an_optional_depth(script, text, arm, label):
    assert script.parse_grid(text) == arm
    assert script.grid_label(arm) == label


@pytest.mark.parametrize("text", ["2", "a,b", "0,2", "1,-1", "1,2@1", "1,2@x", "1,2@9"])
def test_bad_grids_are_refused(script, text):
    with pytest.raises(argparse.ArgumentTypeError):
        script.parse_grid(text)


@pytest.mark.slow
def test_two_arms_train_side_by_side_and_are_scored_by_site(
    script, tiny_model_dir, dataset_dir, tmp_path, capsys
):
    argv = ["--data", str(dataset_dir), "--init", str(tiny_model_dir), "--work",
            str(tmp_path), "--grid", "1,2", "--grid", "2,2@4", "--minutes", "2", "--epochs",
            "1", "--n", "1", "--families", "standard"]  # fmt: skip
    assert script.main(argv) == 0
    from skinoct.layers import load_layers_model

    for name, grid, levels in (("grid_1x2_um", (1.0, 2.0), 3),
                               ("grid_2x2_um_4_levels", (2.0, 2.0), 4)):  # fmt: skip
        model = load_layers_model(tmp_path / name / "model")
        assert model.spacing_um == grid and len(model.spec.channels) == levels
    out = capsys.readouterr().out
    assert "| family | grid 1x2 um face | grid 1x2 um palm | grid 2x2 um, 4 levels face |" in out
    assert out.count("| standard |") == 1


def test_unknown_family_exits_2_before_training(script, tiny_model_dir, dataset_dir, tmp_path):
    argv = ["--data", str(dataset_dir), "--init", str(tiny_model_dir), "--work",
            str(tmp_path / "w"), "--grid", "1,2", "--families", "standard,nope"]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        script.main(argv)
    assert info.value.code == 2
    assert not (tmp_path / "w").exists()
