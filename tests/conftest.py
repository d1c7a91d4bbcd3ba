"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Tests are small: keep BLAS/torch from oversubscribing CI's two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# OpenMP threads that spin while waiting starve each other as soon as another process
# takes a core (test subprocesses, a busy CI host): passive waiting keeps tests fast.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def run_cli(capsys):
    """Run ``skinoct`` in-process; return (exit code, stdout, stderr)."""
    from skinoct.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
