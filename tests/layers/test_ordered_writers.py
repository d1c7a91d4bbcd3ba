"""Every path that writes or scores a mask gives ordered masks without islands (issue 11.1).

Phantom sections of the adversarial kinds the issue names (tilted 15°, very thick SC,
air-only columns, a DEJ disruption) go through the bundled model on every writer path:
``layers segment`` (torch, onnx, TTA, MC-dropout), ``segment_sections`` on a volume,
``layers evaluate``; and ``segment``'s metrics equal ``layers measure`` on its output.
"""

import json

import numpy as np
import pytest

from skinoct.io import read_image, read_mask, write_image
from skinoct.layers import (
    label_components,
    load_layers_model,
    min_epidermis_rows,
    ordering_violations,
    segment_section,
    segment_sections,
)
from skinoct.phantom import SectionParams, render_section

#: Small fields (fast) of the kinds the issue lists.
PHANTOMS = {
    "tilted_15": SectionParams(width_um=320, depth_um=256, tilt_deg=15, surface_depth_um=40),
    "thick_sc": SectionParams(
        width_um=320, depth_um=256, site="palm", sc_thickness_um=150, surface_depth_um=10
    ),
    # skin leaves the field on the right: air-only columns (tilt lifts the left edge)
    "air_only_columns": SectionParams(
        width_um=320, depth_um=200, tilt_deg=-25, surface_depth_um=170
    ),
    "disruption": SectionParams(width_um=320, depth_um=256, disruption=(100.0, 220.0)),
}


def _assert_valid(labels: np.ndarray) -> None:
    assert labels.dtype == np.uint8
    assert ordering_violations(labels) == 0
    components = label_components(labels)
    assert all(n == 1 for n in components.values()), components
    # the dermis never touches air: these phantoms are 1 µm pixels, so >= 8 rows
    columns = labels.reshape(labels.shape[0], -1).T
    for column in columns:
        if (column == 0).any() and (column == 3).any():
            assert (column == 2).sum() >= min_epidermis_rows(1.0)


@pytest.fixture(scope="module")
def model():
    return load_layers_model()


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    paths = {}
    for i, (name, params) in enumerate(PHANTOMS.items()):
        section = render_section(params, seed=20 + i)
        spacing = section.spacing_um
        paths[name] = write_image(
            root / "images" / f"{name}.ome.tif", section.image, spacing_um=spacing, axes="zx"
        )
        mask = root / "masks" / f"{name}.ome.tif"
        write_image(mask, section.labels, spacing_um=spacing, axes="zx")
    return root, paths


def test_phantoms_are_the_adversarial_kinds_asked_for():
    air_only = render_section(PHANTOMS["air_only_columns"], seed=22).labels
    assert (air_only == 0).all(axis=0).any()  # some columns hold only air
    thick = render_section(PHANTOMS["thick_sc"], seed=21).labels
    assert np.median((thick == 1).sum(axis=0)) > 100  # > 100 µm of SC


@pytest.mark.parametrize("name", list(PHANTOMS))
@pytest.mark.parametrize(
    "options",
    [{}, {"tta": True}, {"engine": "onnx"}, {"mc_dropout": 2}],
    ids=["torch", "tta", "onnx", "mc_dropout"],
)
def test_segment_section_is_ordered_on_every_engine(model, name, options):
    section = render_section(PHANTOMS[name], seed=20 + list(PHANTOMS).index(name))
    result = segment_section(section.image, model, spacing_um=section.spacing_um, **options)
    _assert_valid(result.labels)


def test_segment_sections_of_a_volume_are_each_ordered(model):
    from skinoct.phantom import VolumeParams, render_volume

    ph = render_volume(
        VolumeParams(size_um=(160.0, 10.0, 200.0), spacing_um=(1.0, 2.0, 2.0), tilt_deg=10),
        seed=4,
    )
    stack = ph.volume.transpose(1, 0, 2)
    result = segment_sections(stack, model, spacing_um=(1.0, 2.0), batch_size=2)
    for labels in result.labels:
        _assert_valid(labels)


@pytest.mark.parametrize(
    "args", [[], ["--tta"], ["--engine", "onnx"]], ids=["torch", "tta", "onnx"]
)
def test_segment_cli_masks_are_ordered(run_cli, phantom_files, tmp_path, args):
    _, paths = phantom_files
    out = tmp_path / "out"
    code, _, err = run_cli("layers", "segment", *paths.values(), "--out", out, *args)
    assert code == 0, err
    for name in paths:
        _assert_valid(read_mask(out / f"{name}_mask.tif").data)
        record = json.loads((out / f"{name}.metrics.json").read_text())
        assert record["decoding"] == "ordered"


def test_segment_metrics_equal_layers_measure_on_the_same_output(run_cli, phantom_files, tmp_path):
    """One source of truth: metrics.json of segment == `layers measure` of its mask."""
    _, paths = phantom_files
    out = tmp_path / "out"
    code, _, err = run_cli("layers", "segment", *paths.values(), "--out", out)
    assert code == 0, err
    for name in paths:
        saved = json.loads((out / f"{name}.metrics.json").read_text())
        threshold = saved["uncertainty"]["dej_entropy_threshold"]
        code, stdout, err = run_cli(
            "layers",
            "measure",
            out / f"{name}_mask.tif",
            "--entropy",
            out / f"{name}_entropy.tif",
            "--entropy-threshold",
            threshold,
            "--entropy-band-um",
            saved["uncertainty"]["entropy_band_um"],
            "--min-segment-um",
            saved["uncertainty"]["min_segment_um"],
            "--json",
        )
        assert code == 0, err
        measured = json.loads(stdout)
        assert measured == saved["metrics"], name
        # the default threshold, band and length of both are the bundled model's calibration
        code, stdout, _ = run_cli(
            "layers", "measure", out / f"{name}_mask.tif", "--entropy",
            out / f"{name}_entropy.tif", "--json",
        )  # fmt: skip
        assert json.loads(stdout) == saved["metrics"]


def test_evaluate_scores_the_ordered_masks(run_cli, phantom_files, tmp_path, model):
    from skinoct.layers import dice_per_layer

    root, paths = phantom_files
    code, _, err = run_cli("layers", "evaluate", root, "--out", tmp_path / "report.json")
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    for row in report["sections"]:
        image = read_image(paths[row["id"]])
        labels = segment_section(image.data, model, spacing_um=image.spacing_um).labels
        _assert_valid(labels)
        truth = read_mask(root / "masks" / f"{row['id']}.ome.tif").data
        expected = dice_per_layer(labels, truth)
        for layer, value in row["dice"].items():
            if value is None:  # JSON null: layer absent from the truth
                assert np.isnan(expected[layer])
            else:
                assert value == pytest.approx(expected[layer])
