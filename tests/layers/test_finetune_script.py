"""Helpers of scripts/layers_finetune_compare.py (the arms themselves are minutes of training)."""

import math
from pathlib import Path

import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def script():
    return import_script("layers_finetune_compare")


def test_arms_differ_only_in_init_and_the_old_patch_defaults(script):
    recipe = script.arm_command("recipe", Path("T"), Path("O"), Path("I"), 12.0)
    scratch = script.arm_command("scratch-uniform", Path("T"), Path("O"), Path("I"), 12.0)
    assert recipe[recipe.index("--init") + 1] == "I" and "--init" not in scratch
    assert recipe[recipe.index("--time-budget") + 1] == "12.0"
    assert scratch[scratch.index("--sampling") + 1] == "uniform"
    assert "--sampling" not in recipe  # the recipe's own choice


def test_table_names_family_budget_and_a_missing_model_as_nan(script):
    results = {
        "scores": {
            "recipe": {"mean_dice": 0.91, "stratum_corneum": 0.8, "epidermis": 0.95,
                       "dermis": 0.98, "dej_mae_um": 4.25},
            "scratch": {n: math.nan for n in ("mean_dice", *script.LAYERS, "dej_mae_um")},
        },
        "meta": {"family": "smooth-blurred-coarse", "n_train": 100, "n_test": 20,
                 "budget_min": 12.0, "init": "`M`", "machine": "2 cores, x86_64",
                 "epochs_run": {"recipe": 9, "scratch-uniform": None}, "command": "python x"},
    }  # fmt: skip
    text = script.table(results)
    assert "| recipe | 0.910 | 0.800 | 0.950 | 0.980 | 4.2 |" in text
    assert "| scratch | nan | nan | nan | nan | nan |" in text
    assert "`smooth-blurred-coarse` family" in text and "budget 12.0 min" in text


def test_block_option_writes_its_own_markers(script, tmp_path, monkeypatch):
    begin, end = script.markers("layers_finetune_sbc")
    assert begin.startswith("<!-- BEGIN layers_finetune_sbc ")
    assert end == "<!-- END layers_finetune_sbc -->"
    assert script.markers() == (script.BEGIN, script.END)  # the default block unchanged
    doc = tmp_path / "docs" / "layers.md"
    doc.parent.mkdir()
    doc.write_text(f"a\n{script.BEGIN}\nold\n{script.END}\n{begin}\nold\n{end}\n", encoding="utf-8")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    script.write_doc("new", "layers_finetune_sbc")
    text = doc.read_text(encoding="utf-8")
    assert f"{begin}\nnew\n{end}" in text and f"{script.BEGIN}\nold\n{script.END}" in text
