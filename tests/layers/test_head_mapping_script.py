"""scripts/layers_head_mapping.py: SC merged into the epidermis; the fresh-head arm."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _scripts import import_script


@pytest.fixture(scope="module")
def script():
    return import_script("layers_head_mapping")


def test_merge_sc_relabels_the_sc_and_declares_the_label_set(script, tmp_path):
    from skinoct.io import read_image, write_image

    mask = np.repeat(np.array([0, 0, 1, 1, 2, 2, 3, 3], np.uint8)[:, None], 5, axis=1)
    (tmp_path / "masks").mkdir()
    write_image(tmp_path / "masks" / "a.ome.tif", mask, spacing_um=(1.5, 2.0), axes="zx")
    script.merge_sc(tmp_path)
    out = read_image(tmp_path / "masks" / "a.ome.tif")
    expected = np.where(mask == 1, 2, mask)
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert tuple(out.spacing_um) == pytest.approx((1.5, 2.0))
    assert json.loads((tmp_path / "dataset.json").read_text()) == {"labels": [0, 2, 3]}


def test_fresh_arm_switches_the_label_mapping_off(script):
    # The patch the fresh arm runs: load_matching_weights as seen by the fit no longer
    # receives the label sets, so a [0, 2, 3] head starts from fresh weights.
    probe = script.FRESH_HEAD.replace(
        "from skinoct.cli import main\nsys.exit(main())\n",
        "import torch, warnings\n"
        "from skinoct.layers import NetworkSpec\n"
        "spec = NetworkSpec(channels=(4, 8), strides=(2,), num_res_units=0)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    fit.load_matching_weights(net.build_network(spec, 3),\n"
        "        net.build_network(spec, 4).state_dict(), spec=spec,\n"
        "        source_labels=[0, 1, 2, 3], target_labels=[0, 2, 3])\n"
        "print(str(w[-1].message))\n",
    )
    assert probe != script.FRESH_HEAD
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert "no match in the initial model" in out.stdout
    assert "take the initial model" not in out.stdout
    assert script.arm_command("mapped", Path("t"), Path("o"), 1.0)[1:3] == ["-m", "skinoct"]
