"""benchmarks/bench_gpu.py says so and exits 0 where torch sees no CUDA GPU."""

import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_bench_gpu_without_cuda_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
