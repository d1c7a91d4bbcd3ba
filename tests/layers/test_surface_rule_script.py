"""scripts/layers_surface_rule.py: rule-on vs rule-off decoding of the same probabilities."""


import numpy as np
import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def script():
    return import_script("layers_surface_rule")


def _probabilities(nz=40, nx=3):
    """Air rows 0-9, then a band (10-19) the model calls dermis over epidermis, dermis below."""
    p = np.full((4, nz, nx), 0.05, np.float32)
    p[0, :10] = 0.85
    p[3, 10:20], p[2, 10:20] = 0.5, 0.4
    p[3, 20:] = 0.85
    return p / p.sum(axis=0, keepdims=True)


def test_rule_inserts_the_minimum_epidermis_and_moves_the_dej(script):
    from skinoct.layers import min_epidermis_rows

    truth = np.zeros((40, 3), np.uint8)
    truth[10:20], truth[20:] = 2, 3  # no SC annotated: epidermis 10-19, dermis from 20
    c = script.compare_section(_probabilities(), truth, spacing_um=(1.0, 1.0),
                               label_values=(0, 1, 2, 3))  # fmt: skip
    m = min_epidermis_rows(1.0)
    # Without the rule the dermis starts right under the air (DEJ 10 µm too shallow);
    # with it, exactly m epidermis rows are inserted (the model prefers dermis there).
    assert (c["no_rule"]["labels"][10] == 3).all()
    assert ((c["rule"]["labels"] == 2).sum(axis=0) == m).all()
    assert c["no_rule"]["dej_mae_um"] == pytest.approx(10.0, abs=0.5)
    assert c["rule"]["dej_mae_um"] == pytest.approx(10.0 - m, abs=0.5)
    assert c["changed_px"] == 3 * m


def test_markdown_lists_changed_sections_only(script):
    row = {"id": "s1", "changed_px": 5, "dej_rule": 2.0, "dej_no_rule": 10.0,
           "epidermis_rule": 0.5, "epidermis_no_rule": 0.0, "dermis_rule": 0.9,
           "dermis_no_rule": 0.8}  # fmt: skip
    same = {**row, "id": "s2", "changed_px": 0}
    text = script.markdown({"sections": [row, same], "model": "M", "weights_sha256": "a" * 64,
                            "data": "D"}, "cmd")  # fmt: skip
    assert "| s1 | 5 | 10.0 → **2.0** |" in text
    assert "s2" not in text
    assert "1 of 2 test sections changed by the rule, 1 identical" in text


def test_update_doc_replaces_only_the_marked_block(script, tmp_path):
    doc = tmp_path / "layers.md"
    doc.write_text(f"intro\n{script.BEGIN}\nold table\n{script.END}\noutro\n", encoding="utf-8")
    script.update_doc(doc, "new table")
    assert doc.read_text(encoding="utf-8") == (
        f"intro\n{script.BEGIN}\nnew table\n{script.END}\noutro\n"
    )
    doc.write_text("no markers here\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not found"):
        script.update_doc(doc, "new table")
