"""Model integrity (issue 15, "Models"): every hostile or careless manifest edit is a
ModelError naming model.json; NaN weights are refused; the manifest is part of the
model's identity; a foreign network in the ONNX cache is never run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from skinoct.errors import ModelError
from skinoct.layers import load_layers_model
from skinoct.matrix import load_matrix_model
from skinoct.models import load_artifact, model_provenance


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit(model_dir, edit):
    path = model_dir / "model.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _set(*keys, value):
    def edit(manifest):
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


LAYERS_EDITS = [
    ("spacing 1e-6 µm (a 15 GB grid)", _set("preprocessing", "spacing_um", value=[1e-6, 2.0]),
     r"preprocessing\.spacing_um\[0\]"),
    ("spacing as text", _set("preprocessing", "spacing_um", value="1,2"), "spacing_um"),
    ("spacing NaN", _set("preprocessing", "spacing_um", value=[1.0, "NaN"]), "spacing_um"),
    ("label 7", _set("label_values", value=[0, 1, 2, 7]), "unknown class set"),
    ("labels permuted", _set("label_values", value=[0, 2, 1, 3]), "unknown class set"),
    ("dropout 5", _set("architecture", "args", "dropout", value=5.0), "dropout"),
    ("weights outside", _set("weights_file", value="../elsewhere.safetensors"), "weights_file"),
    ("weights absolute", _set("weights_file", value="/etc/passwd"), "weights_file"),
    ("weights NUL", _set("weights_file", value="model\x00.safetensors"), "weights_file"),
    ("args as a string", _set("architecture", "args", value="channels=8"), "architecture.args"),
    ("out_channels four", _set("architecture", "args", "out_channels", value="four"),
     "out_channels"),
    ("huge channels", _set("architecture", "args", "channels", value=[8, 10**7, 32]),
     r"channels\[1\]"),
    ("channels nested", _set("architecture", "args", "channels", value=[[8], [16], [32]]),
     "channels"),
    ("strides length", _set("architecture", "args", "strides", value=[2]), "strides"),
    ("max_window huge", _set("inference", "max_window", value=[10**9, 64]), "max_window"),
    ("sha not hex", _set("weights_sha256", value="x" * 64), "weights_sha256"),
    ("training a list", _set("training", value=[1, 2]), "training"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "match"), LAYERS_EDITS, ids=[e[0] for e in LAYERS_EDITS])
def test_layers_manifest_edits_are_model_errors_naming_the_file(
    layers_model_dir, tmp_path, what, edit, match
):
    bad = _copy(layers_model_dir, tmp_path / "bad")
    _edit(bad, edit)
    with pytest.raises(ModelError, match=match) as info:
        load_layers_model(bad)
    assert info.value.path == bad / "model.json"


MATRIX_EDITS = [
    ("input size as text", _set("preprocessing", "input_size", value="224"), "input_size"),
    ("input size huge", _set("preprocessing", "input_size", value=10**6), "input_size"),
    ("classes mismatch", _set("classes", value=[1, 2, 3]), "classes"),
    ("num_classes huge", _set("architecture", "num_classes", value=10**6), "num_classes"),
    ("architecture a list", _set("architecture", value=["mobilenet"]), "architecture"),
]


@pytest.mark.parametrize(("what", "edit", "match"), MATRIX_EDITS, ids=[e[0] for e in MATRIX_EDITS])
def test_matrix_manifest_edits_are_model_errors_naming_the_file(
    matrix_model_dir, tmp_path, what, edit, match
):
    bad = _copy(matrix_model_dir, tmp_path / "bad")
    _edit(bad, edit)
    with pytest.raises(ModelError, match=match) as info:
        load_matrix_model(bad)
    assert info.value.path == bad / "model.json"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('{"a": ' * 50 + "1" + "}" * 50, "nested"),
        ('{"format": NaN}', "unreadable"),
        ("\xff\xfe", "unreadable"),
    ],
    ids=["100k-deep list", "50-deep object", "NaN constant", "not utf-8"],
)
def test_unparseable_or_deep_manifests_are_model_errors(layers_model_dir, tmp_path, text, match):
    bad = _copy(layers_model_dir, tmp_path / "bad")
    (bad / "model.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelError, match=match):
        load_artifact(bad)


def test_oversized_manifest_is_refused_before_reading(layers_model_dir, tmp_path):
    bad = _copy(layers_model_dir, tmp_path / "bad")
    with open(bad / "model.json", "a") as fh:
        fh.write(" " * (5 << 20))
    with pytest.raises(ModelError, match="bytes, more than"):
        load_artifact(bad)


def test_nan_weights_with_a_matching_sha_are_refused(layers_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from skinoct.models import sha256_file

    bad = _copy(layers_model_dir, tmp_path / "bad")
    weights = load_file(str(bad / "model.safetensors"))
    weights = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in weights.items()}  # fmt: skip
    save_file(weights, str(bad / "model.safetensors"))
    _edit(bad, _set("weights_sha256", value=sha256_file(bad / "model.safetensors")))
    with pytest.raises(ModelError, match="NaN or infinite") as info:
        load_layers_model(bad)
    assert info.value.path == bad / "model.safetensors"


def test_manifest_is_part_of_the_model_identity(layers_model_dir, tmp_path):
    original = model_provenance(load_layers_model(layers_model_dir))
    edited = _copy(layers_model_dir, tmp_path / "edited")
    _edit(edited, _set("architecture", "args", "dropout", value=0.5))  # valid, but not the same
    changed = model_provenance(load_layers_model(edited))
    assert changed["weights_sha256"] == original["weights_sha256"]
    assert changed["manifest_sha256"] != original["manifest_sha256"]
    assert changed["model_digest"] != original["model_digest"]
    # the dict read from the folder alone (no weights loaded) is the same as the model's
    assert model_provenance(edited) == changed


def test_bundled_models_pass_the_schema_and_say_they_are_synthetic():
    for task in ("layers", "matrix"):
        info = model_provenance(task=task)
        assert info["trained_on_synthetic"] is True and len(info["model_digest"]) == 64
    assert load_layers_model().provenance()["trained_on_synthetic"]
    assert load_matrix_model().is_synthetic


def test_explicit_flags_are_read_in_both_manifest_forms(layers_model_dir, matrix_model_dir):
    assert model_provenance(layers_model_dir)["trained_on_synthetic"] is True  # training.
    assert model_provenance(matrix_model_dir)["trained_on_synthetic"] is False  # provenance.


def _foreign_network(model, path):
    """Export another network (other weights, same architecture) to ``path``."""
    from skinoct.layers import LayersModel

    other = LayersModel(
        model.spec,
        {k: v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()},
        label_values=model.label_values,
        spacing_um=model.spacing_um,
    )
    other.export_onnx(path)


def test_foreign_network_in_the_onnx_cache_is_detected_and_reexported(layers_model_dir):
    model = load_layers_model(layers_model_dir)
    runner = model.onnx_runner()
    path = model.onnx_path()
    x = np.random.default_rng(1).standard_normal((1, 1, 32, 32)).astype(np.float32)
    expected = runner(x)
    # Someone (or a stale run) puts a different network under this model's name; the
    # sidecar is forged too, so only the probe comparison can tell.
    _foreign_network(model, path)
    from skinoct.models import sha256_file

    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "onnx_sha256": sha256_file(path)}))
    fresh = load_layers_model(layers_model_dir)
    with pytest.warns(UserWarning, match="does not match this model"):
        got = fresh.onnx_runner()(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert json.loads(sidecar.read_text())["digest"] == fresh.provenance()["model_digest"]


def test_onnx_file_without_a_matching_sidecar_is_reexported(matrix_model_dir, tmp_path):
    model = load_matrix_model(_copy(matrix_model_dir, tmp_path / "m"))
    path = model.onnx_path()
    model.onnx_runner()
    path.write_bytes(path.read_bytes() + b"\0")  # changed after export
    again = load_matrix_model(tmp_path / "m")
    with pytest.warns(UserWarning, match="does not match"):
        again.onnx_runner()
    assert path.read_bytes()[-1:] != b"\0"


def _paths(obj, prefix=()):
    """Every key path of a nested manifest."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("task", ["layers", "matrix"])
def test_any_edit_of_any_field_is_accepted_or_a_model_error(task, tmp_path):
    """Property (hypothesis): replacing any manifest field by any JSON value never raises
    anything but ModelError from the schema check."""
    from hypothesis import HealthCheck, given, settings

    from skinoct.models import bundled_model_dir, read_manifest, validate_manifest

    folder = tmp_path / task
    folder.mkdir()
    original, _ = read_manifest(bundled_model_dir(task) / "model.json")
    paths = sorted(_paths(original))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(paths), _JSON)
    def check(path, value):
        manifest = json.loads(json.dumps(original))
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        try:
            validate_manifest(manifest, path=folder / "model.json")
        except ModelError as exc:
            assert exc.path == folder / "model.json"

    check()
