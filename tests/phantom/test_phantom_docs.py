"""The docstring examples of the public renderers run and give what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module", ["skinoct.phantom._section", "skinoct.phantom._enface", "skinoct.phantom._volume"]
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
