"""scripts/_doc_blocks.py: the marker-block writer every docs-generating script uses."""

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def blocks():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import _doc_blocks

        yield _doc_blocks
    finally:
        sys.path.remove(str(SCRIPTS))


def test_block_is_replaced_and_the_rest_kept(blocks, tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("head\n<!-- B -->\nold\n<!-- E -->\ntail $1 \\1\n", encoding="utf-8")
    assert blocks.replace_block(doc, "<!-- B -->", "<!-- E -->", "new $1 \\1")
    assert doc.read_text() == "head\n<!-- B -->\nnew $1 \\1\n<!-- E -->\ntail $1 \\1\n"


def test_missing_markers_fail_or_are_skipped(blocks, tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"d\.md: markers"):
        blocks.replace_block(doc, "<!-- B -->", "<!-- E -->", "x")
    assert blocks.replace_block(doc, "<!-- B -->", "<!-- E -->", "x", missing="skip") is False
    assert doc.read_text() == "no markers\n"
