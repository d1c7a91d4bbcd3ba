"""The Examples sections of the public docstrings run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from skinoct.morphometry import _boundaries, _metrics


@pytest.mark.parametrize("module", [_boundaries, _metrics])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
