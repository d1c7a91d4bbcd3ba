"""`layers segment` says in plain words when a phantom-trained model segmented (issue 15 §6)."""

from __future__ import annotations

import json

import numpy as np
from _layers_synthetic import random_model, synthetic_section

from skinoct.io import write_image
from skinoct.layers import save_layers_model


def test_segment_output_and_closing_line_carry_the_banner(run_cli, tmp_path):
    image, _ = synthetic_section(np.random.default_rng(0), (45, 67), surface=6, sc=4, epidermis=10)
    section = write_image(tmp_path / "sec.ome.tif", image, spacing_um=(1.0, 1.0), axes="zx")
    for synthetic in (True, False):
        model = save_layers_model(tmp_path / f"m{synthetic}", random_model(0),
                                  training={"synthetic_data": synthetic})  # fmt: skip
        out = tmp_path / f"out{synthetic}"
        code, _, err = run_cli("layers", "segment", section, "--out", out, "--model", model)
        assert code == 0, err
        record = json.loads((out / "sec.metrics.json").read_text())
        flat = " ".join(err.split())
        if synthetic:
            assert "layer segmentation model" in record["provenance"]
            assert "synthetic LC-OCT phantom images only" in record["provenance"]
            assert "note: Phantom-trained model: the layer segmentation model" in flat
        else:
            assert record["provenance"] is None and "Phantom-trained" not in flat
