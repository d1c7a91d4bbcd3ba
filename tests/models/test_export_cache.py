"""The ONNX export cache records the torch network's probe output, so a cached export
is verified (and run) without building the torch network or importing MONAI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from skinoct.layers import load_layers_model
from skinoct.models._cache import _recorded_logits


@pytest.fixture
def model_dir(layers_model_dir, tmp_path):
    """A private copy: the export is written next to its weights."""
    return shutil.copytree(layers_model_dir, tmp_path / "m")


def _sidecar(model):
    path = model.onnx_path()
    return path.with_name(path.name + ".json")


def test_sidecar_records_the_torch_output_on_the_probe(model_dir):
    model = load_layers_model(model_dir)
    assert model._networks, "no export yet: the weights are checked by building the network"
    model.onnx_runner()
    engines = model._exported()
    meta = json.loads(_sidecar(model).read_text())
    recorded = _recorded_logits(meta)
    want = model._reference_logits(engines.probe)
    assert recorded.shape == want.shape == (1, 4, *engines.probe.shape[-2:])
    np.testing.assert_array_equal(recorded, want)  # float32 round trip through base64


def test_cached_export_runs_without_building_the_torch_network(model_dir):
    load_layers_model(model_dir).onnx_runner()  # export once
    fresh = load_layers_model(model_dir)
    assert not fresh._networks  # the export proves the weights fit
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 24)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified against the record: no re-export
        got = fresh.onnx_runner()(x)
    assert not fresh._networks
    np.testing.assert_allclose(got, fresh._reference_logits(x), atol=1e-4)


def test_sidecar_without_a_record_is_checked_against_torch_and_completed(model_dir):
    model = load_layers_model(model_dir)
    model.onnx_runner()
    sidecar = _sidecar(model)
    meta = json.loads(sidecar.read_text())
    old = {k: v for k, v in meta.items() if k != "probe_logits"}  # an earlier release's
    sidecar.write_text(json.dumps(old))
    onnx_bytes = model.onnx_path().read_bytes()
    fresh = load_layers_model(model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh.onnx_runner()
    assert fresh._networks  # the torch network made the reference
    assert json.loads(sidecar.read_text())["probe_logits"] == meta["probe_logits"]
    assert model.onnx_path().read_bytes() == onnx_bytes  # kept, not exported again


def test_export_of_an_earlier_graph_version_is_exported_again_quietly(model_dir):
    import onnx

    from skinoct.models._graph import EXPORT_GRAPH_VERSION

    model = load_layers_model(model_dir)
    model.onnx_runner()
    sidecar = _sidecar(model)
    meta = json.loads(sidecar.read_text())
    assert meta["graph_version"] == EXPORT_GRAPH_VERSION
    old = {k: v for k, v in meta.items() if k != "graph_version"}  # an earlier release's
    sidecar.write_text(json.dumps(old))
    fresh = load_layers_model(model_dir)
    assert not fresh._networks  # made from these weights: they fit, no eager build
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an upgrade, not a mismatch: no warning
        fresh.onnx_runner()
    assert fresh._networks  # the torch network made the new export and its record
    assert json.loads(sidecar.read_text())["graph_version"] == EXPORT_GRAPH_VERSION
    ops = {node.op_type for node in onnx.load(model.onnx_path()).graph.node}
    assert "PRelu" not in ops and "LeakyRelu" in ops  # skinoct.models._graph


@pytest.mark.parametrize("record", ["wrong values", "unreadable"])
def test_export_that_does_not_reproduce_its_record_is_exported_again(model_dir, record):
    model = load_layers_model(model_dir)
    model.onnx_runner()
    sidecar = _sidecar(model)
    meta = json.loads(sidecar.read_text())
    good = meta["probe_logits"]
    if record == "wrong values":
        wrong = _recorded_logits(meta) + 1.0
        import base64

        meta["probe_logits"] = {**good, "float32_le_base64": base64.b64encode(
            wrong.astype("<f4").tobytes()).decode()}  # fmt: skip
        sidecar.write_text(json.dumps(meta))
        fresh = load_layers_model(model_dir)
        with pytest.warns(UserWarning, match="does not match this model"):
            fresh.onnx_runner()
    else:
        meta["probe_logits"] = {"shape": [1, 2], "float32_le_base64": "not base64!"}
        sidecar.write_text(json.dumps(meta))
        fresh = load_layers_model(model_dir)
        fresh.onnx_runner()  # falls back to the torch network's output, which it matches
    assert json.loads(sidecar.read_text())["probe_logits"] == good


def test_cached_grading_export_runs_without_building_the_torch_network(
    matrix_model_dir, tmp_path
):
    from skinoct.matrix import load_matrix_model, predict_tiles

    folder = shutil.copytree(matrix_model_dir, tmp_path / "mm")
    assert load_matrix_model(folder)._network is not None  # no export yet: checked now
    load_matrix_model(folder).onnx_runner()
    fresh = load_matrix_model(folder)
    assert fresh._network is None and fresh.device == "cpu"
    tiles = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    p_onnx = predict_tiles(tiles, fresh, engine="onnx")
    assert fresh._network is None
    p_torch = predict_tiles(tiles, fresh, engine="torch")  # built on first use
    assert fresh._network is not None
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)


def test_running_cached_exports_imports_neither_monai_nor_torchvision(
    model_dir, matrix_model_dir, tmp_path
):
    from skinoct.matrix import load_matrix_model

    folder = shutil.copytree(matrix_model_dir, tmp_path / "mm")
    load_layers_model(model_dir).onnx_runner()
    load_matrix_model(folder).onnx_runner()
    code = (
        "import sys, numpy as np\n"
        "from skinoct.layers import load_layers_model, segment_section\n"
        "from skinoct.matrix import load_matrix_model, predict_tiles\n"
        f"m = load_layers_model({str(model_dir)!r})\n"
        "img = np.random.default_rng(0).random((40, 64)).astype(np.float32)\n"
        "r = segment_section(img, m, spacing_um=(1.0, 1.0), engine='onnx')\n"
        "assert r.labels.shape == img.shape\n"
        f"g = load_matrix_model({str(folder)!r})\n"
        "tiles = np.zeros((2, 3, 32, 32), np.uint8)\n"
        "assert predict_tiles(tiles, g, engine='onnx').shape == (2, 4)\n"
        "print(sorted(k for k in ('monai', 'torchvision') if k in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SKINOCT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_concurrent_first_runners_export_once(model_dir, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    model = load_layers_model(model_dir)
    engines = model._exported()
    exports = []
    real = engines._export
    monkeypatch.setattr(engines, "_export", lambda path: (exports.append(path), real(path)))
    with ThreadPoolExecutor(4) as pool:  # torch's ONNX exporter is not thread-safe
        runners = list(pool.map(lambda _: engines.runner("onnx", threads=1), range(4)))
    assert len(exports) == 1
    assert all(r is runners[0] for r in runners)
