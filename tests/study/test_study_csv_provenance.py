"""Spreadsheet-safe CSV cells (OWASP CSV injection) and the provenance banner."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skinoct.io import (
    provenance_banner,
    read_csv_table,
    restore_csv_cell,
    safe_csv_cell,
    write_csv_table,
)


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx",
                                  "=HYPERLINK(\"http://x\")", "=cmd|' /C calc'!A0"])  # fmt: skip
def test_formula_cells_are_quoted(text):
    assert safe_csv_cell(text) == "'" + text
    assert restore_csv_cell(safe_csv_cell(text)) == text


@pytest.mark.parametrize("value", ["young", "", "a=b", "'plain", 1.5, -2.0, 3, None, True])
def test_harmless_cells_are_unchanged(value):
    assert safe_csv_cell(value) == value


@given(st.text(max_size=12))
def test_neutralising_round_trips_exactly(text):
    safe = safe_csv_cell(text)
    assert restore_csv_cell(safe) == text
    assert not safe.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_table_round_trip_keeps_names_numbers_and_negative_metrics(tmp_path):
    df = pd.DataFrame({"subject": ["=s1", "NA", "null"], "group": ["+g", "nan", "None"],
                       "score": [1.5, float("nan"), -2.0], "ok": [True, False, True]})  # fmt: skip
    path = write_csv_table(tmp_path / "t.csv", df)
    raw = path.read_text()
    assert "'=s1" in raw and "'+g" in raw and ",-2," in raw  # numbers stay numbers
    back = read_csv_table(path)
    assert back["subject"].tolist() == ["=s1", "NA", "null"]
    assert back["group"].tolist() == ["+g", "nan", "None"]
    assert back["score"].tolist()[0] == 1.5 and back["score"].isna().tolist()[1]
    assert back["ok"].tolist() == [True, False, True]


# ---------------------------------------------------------------- provenance


def _bundled_manifest(task: str) -> dict:
    from skinoct.models import bundled_model_dir

    return json.loads((bundled_model_dir(task) / "model.json").read_text())


@pytest.mark.parametrize("task", ["layers", "matrix"])
def test_bundled_models_get_the_banner(task):
    text = provenance_banner(_bundled_manifest(task))
    words = {"layers": "layer segmentation", "matrix": "dermal-matrix grading"}[task]
    assert text is not None and words in text
    assert "phantom" in text and "not clinical measurements" in text


def test_banner_from_analysis_result_record_and_study_folder(tmp_path):
    analysis = {"versions": {"layers_model": {"task": "layers", "synthetic_training_data": True},
                             "matrix_model": {"task": "matrix", "synthetic_training_data": True}}}
    text = provenance_banner(analysis)
    assert text.startswith("Phantom-trained models: the layer segmentation and dermal-matrix")
    record = {"subject": "a", "status": "ok", "result": analysis}
    (tmp_path / "subjects").mkdir()
    (tmp_path / "subjects" / "a.json").write_text(json.dumps(record))
    assert provenance_banner(tmp_path) == text
    assert provenance_banner([record]) == text
    segment = {"model": {"weights_sha256": "0", "trained_on_synthetic_data": True}}
    assert "model that produced" in provenance_banner(segment)


@pytest.mark.parametrize(
    "info",
    [
        {"versions": {"layers_model": {"task": "layers", "synthetic_training_data": False}}},
        {"model": {"trained_on_synthetic_data": False}},
        {"task": "layers", "training": {"synthetic_data": False}},
        {"group": "synthetic_data"},
        [],
    ],
)
def test_no_banner_for_models_trained_on_real_data(info, tmp_path):
    assert provenance_banner(info) is None
    assert provenance_banner(tmp_path) is None  # a folder with no records
