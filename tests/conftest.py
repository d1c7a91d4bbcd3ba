"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Tests are small: keep BLAS/torch from oversubscribing CI's two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def run_cli(capsys):
    """Run ``skinoct`` in-process; return (exit code, stdout, stderr)."""
    from skinoct.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
