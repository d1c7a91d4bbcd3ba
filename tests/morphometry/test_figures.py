"""Morphometry figures: matplotlib figures that no pyplot state holds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from skinoct.morphometry import measure_section, measure_volume
from skinoct.morphometry.figures import plot_section, plot_volume_maps, save_figures


def _flat(depth):
    return lambda *lateral: np.full(np.broadcast(*lateral).shape, depth)


def test_section_figure_draws_the_three_boundaries_over_the_image(flat_mask):
    mask, spacing = flat_mask
    metrics = measure_section(mask, spacing_um=spacing)
    image = np.random.default_rng(0).random(mask.shape)
    fig = plot_section(metrics, image=image, title="flat")
    assert isinstance(fig, Figure)
    top, bottom = fig.axes
    assert [line.get_label() for line in top.lines][:3] == ["surface", "sc_junction", "dej"]
    np.testing.assert_allclose(top.lines[2].get_ydata(), metrics.boundaries.dej)
    assert len(bottom.lines) == 3  # the three thickness profiles


def test_volume_maps_have_three_panels_with_colour_bars(render):
    spacing = (0.5, 2.0, 1.5)
    mask = render((100, 12, 16), spacing, _flat(5.2), _flat(10.2), _flat(30.2))
    fig = plot_volume_maps(measure_volume(mask, spacing_um=spacing))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # three maps, three colour bars
    dej = fig.axes[2].images[0].get_array()
    np.testing.assert_allclose(np.asarray(dej), 30.0, atol=0.5)


def test_save_figures_writes_pngs_without_importing_pyplot(tmp_path, flat_mask):
    mask, spacing = flat_mask
    np.save(tmp_path / "mask.npy", mask)
    code = (
        "import sys, numpy as np\n"
        "from skinoct.morphometry import measure_section\n"
        "from skinoct.morphometry.figures import save_figures\n"
        f"mask = np.load({str(tmp_path / 'mask.npy')!r})\n"
        f"m = measure_section(mask, spacing_um={spacing!r})\n"
        f"print(save_figures(m, {str(tmp_path)!r}, 'flat', mask=mask, dpi=50)[0])\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    path, pyplot = out.stdout.split()
    assert pyplot == "False"
    with Image.open(path) as png:
        assert png.size == (400, 300)  # 8 × 6 inches at 50 dpi


def test_save_figures_of_a_volume(tmp_path, render):
    spacing = (0.5, 2.0, 1.5)
    mask = render((100, 12, 16), spacing, _flat(5.2), _flat(10.2), _flat(30.2))
    (path,) = save_figures(measure_volume(mask, spacing_um=spacing), tmp_path, "vol", dpi=40)
    assert path.name == "vol.maps.png"
    with Image.open(path) as png:
        assert png.size == (560, 176)
