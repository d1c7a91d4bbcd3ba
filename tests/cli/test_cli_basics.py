import json
import subprocess
import sys

import numpy as np
import pytest

from skinoct import __version__
from skinoct.io import write_image


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"skinoct {__version__}"


def test_info(run_cli):
    code, out, _ = run_cli("info")
    assert code == 0
    assert "torch device" in out and "torch threads" in out


def test_inspect_json(run_cli, tmp_path):
    path = write_image(tmp_path / "s.tif", np.arange(20, dtype=np.uint16).reshape(4, 5),
                       spacing_um=(0.5, 1.5), axes="zx")  # fmt: skip
    code, out, _ = run_cli("inspect", path, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["shape"] == [4, 5]
    assert record["spacing_um"] == [0.5, 1.5]
    assert record["spacing_source"] == "metadata"
    assert record["kind"] == "vertical section"
    assert record["min"] == 0 and record["max"] == 19


def test_inspect_spacing_override_space_separated(run_cli, tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3, 4)))
    code, out, _ = run_cli("inspect", path, "--spacing", "2", "0.5", "0.5", "--json")
    assert code == 0
    assert json.loads(out)["spacing_um"] == [2.0, 0.5, 0.5]


def _bad_inputs(tmp_path):
    missing = tmp_path / "missing.tif"
    truncated = write_image(
        tmp_path / "trunc.tif", np.zeros((64, 64), np.uint16), spacing_um=1, axes="zx"
    )
    truncated.write_bytes(truncated.read_bytes()[:200])
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 3)))
    onedim = tmp_path / "onedim.npy"
    np.save(onedim, np.zeros(5))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[np.nan, 1.0]]))
    return {
        "missing.tif": ([missing], "file not found"),
        "trunc.tif": ([truncated], "cannot read"),
        "empty.npy": ([empty], "empty"),
        "onedim.npy": ([onedim], "expected a 2-D image"),
        "nan.npy": ([nan], "NaN"),
    }


@pytest.mark.parametrize("name", ["missing.tif", "trunc.tif", "empty.npy", "onedim.npy", "nan.npy"])
def test_bad_input_one_line_exit_2(run_cli, tmp_path, name):
    files, problem = _bad_inputs(tmp_path)[name]
    code, out, err = run_cli("inspect", *files)
    assert code == 2
    assert name in err and problem in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_spacing_exit_2(run_cli, tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((3, 3)))
    code, _, err = run_cli("inspect", path, "--spacing", "0", "1")
    assert code == 2 and "spacing" in err and "Traceback" not in err


def test_foreign_mask_labels_exit_2(run_cli, tmp_path):
    path = tmp_path / "mask.npy"
    np.save(path, np.array([[0, 9]], np.uint8))
    from skinoct.cli._common import run_batch  # noqa: F401  (same path the commands use)
    from skinoct.io import read_mask

    with pytest.raises(Exception, match=r"mask\.npy: label mask holds values 9"):
        read_mask(path)


def test_mixed_batch_exit_1(run_cli, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((3, 3)))
    code, out, err = run_cli("-q", "inspect", good, tmp_path / "bad.tif", "--json")
    assert code == 1
    assert "good.npy" in out and "bad.tif" in err


def test_debug_shows_traceback(run_cli, tmp_path):
    code, _, err = run_cli("--debug", "inspect", tmp_path / "missing.tif")
    assert code == 2 and "Traceback" in err


def test_usage_error_exit_2(run_cli):
    code, _, _ = run_cli("inspect", "--no-such-option")
    assert code == 2


def test_console_script_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "skinoct", "inspect", str(tmp_path / "gone.tif")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "gone.tif: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_text_with_brackets_is_printed_verbatim(run_cli, tmp_path):
    code, _, err = run_cli("inspect", tmp_path / "scan[z].tif")
    assert code == 2 and "scan[z].tif: file not found" in err


@pytest.mark.parametrize("command", [["study", "run", "--out", "o"], ["analyze", "--out", "o"]])
def test_inference_commands_prefer_passive_openmp(run_cli, tmp_path, monkeypatch, command):
    import os

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    bad_input = tmp_path / "bad.csv"
    bad_input.write_text("not,a,manifest\n")
    code, _, _ = run_cli(*command, bad_input)
    assert code == 2
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
