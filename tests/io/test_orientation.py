"""Orientation sanity (issue 15, 'Orientation'): air/gel above the tissue, plausible axes.

A false rejection of a real image is worse than a miss, so the phantom variety below
(tilted, curved, thick stratum corneum, no air, deep surface, noisy, striped, narrow)
must all pass, while the issue's cases (a section saved as x × z, a volume saved as
x, y, z) must be refused with the axis order to use.
"""

import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import (
    Image,
    check_orientation,
    orientation_verdict,
    read_image,
    read_volume,
    write_image,
)
from skinoct.phantom import SectionParams, VolumeParams, render_section, render_volume

SECTION_VARIETY = [
    {},
    {"tilt_deg": 15.0},
    {"tilt_deg": -25.0},
    {"tilt_deg": 30.0, "curvature": 2.0, "stripes": 0.3},
    {"tilt_deg": -30.0, "curvature": -2.0, "surface_depth_um": 0.0},
    {"sc_thickness_um": 60.0},
    {"sc_thickness_um": 120.0, "epidermis_thickness_um": 150.0},
    {"surface_depth_um": 0.0},
    {"surface_depth_um": 300.0},
    {"curvature": -2.0},
    {"noise": 4.0},
    {"attenuation_per_mm": (8.0, 10.0, 12.0)},
    {"attenuation_per_mm": (0.2, 0.2, 0.2)},
    {"width_um": 200.0},
    {"depth_um": 1000.0, "width_um": 600.0},
    {"roughness_um": 15.0, "n_protrusions": 5},
    {"site": "back", "pigmentation": 1.0},
]


def _section(seed=0, **params):
    params.setdefault("width_um", 600.0)
    params.setdefault("depth_um", 400.0)
    params.setdefault("spacing_um", (2.0, 2.0))
    return render_section(SectionParams(**params), seed=seed).image


def _ids(params):
    return ",".join(map(str, params)) or "default"


@pytest.mark.parametrize("params", SECTION_VARIETY, ids=_ids)
@pytest.mark.parametrize("seed", [0, 1])
def test_valid_phantom_sections_pass(params, seed):
    image = _section(seed, **params)
    verdict = orientation_verdict(image, axes="zx")
    assert verdict.ok, (params, verdict)
    check_orientation(Image(image, (2.0, 2.0), "zx"))  # no error


@pytest.mark.parametrize(
    "params", [{}, {"sc_thickness_um": 60.0}, {"noise": 4.0}, {"width_um": 200.0}]
)
def test_section_saved_as_x_by_z_is_refused(params):
    image = _section(**params)
    verdict = orientation_verdict(image.T, axes="zx")
    assert not verdict.ok and verdict.depth_axis == 1
    assert "--axes xz" in verdict.message


def test_upside_down_section_is_refused():
    verdict = orientation_verdict(_section()[::-1], axes="zx")
    assert not verdict.ok and verdict.flipped and "upside down" in verdict.message


@pytest.mark.parametrize(
    "params",
    [{}, {"tilt_deg": 20.0, "tilt_y_deg": -15.0}, {"surface_depth_um": 0.0},
     {"sc_thickness_um": 80.0}, {"noise": 3.0}],
)  # fmt: skip
def test_valid_phantom_volumes_pass(params):
    params = {"size_um": (200.0, 100.0, 160.0), "spacing_um": (2.0, 2.0, 2.0), **params}
    volume = render_volume(VolumeParams(**params), seed=0).volume
    assert orientation_verdict(volume, axes="zyx").ok


def test_volume_in_x_y_z_is_refused_with_the_order_to_use():
    volume = render_volume(VolumeParams(size_um=(200.0, 100.0, 160.0), spacing_um=(2.0,) * 3),
                           seed=0).volume  # fmt: skip
    verdict = orientation_verdict(volume.transpose(2, 1, 0), axes="zyx", spacing_um=(2, 2, 2))
    assert not verdict.ok and verdict.depth_axis == 2
    assert "--axes xyz" in verdict.message and "extents 160 × 100 × 200 µm" in verdict.message


def test_flat_or_constant_images_pass():
    assert orientation_verdict(np.zeros((50, 80)), axes="zx").ok
    rng = np.random.default_rng(0)
    assert orientation_verdict(rng.random((50, 80)), axes="zx").ok
    assert orientation_verdict(rng.random((20, 30, 40)), axes="zyx").ok


def test_reader_check_names_the_file_and_axes_override(tmp_path):
    image = _section()
    path = write_image(tmp_path / "xz.tif", image.T.copy(), spacing_um=2, axes="zx")
    with pytest.raises(InputError, match=r"xz\.tif: the depth axis looks wrong.*--axes xz"):
        read_image(path, axes="zx", check_orientation=True)
    fixed = read_image(path, axes="xz")  # the override transposes: no error
    assert fixed.shape == image.shape and fixed.axes == "zx"
    assert read_image(path, axes="zx").shape == image.T.shape  # no check unless asked


def test_volume_reader_check(tmp_path):
    volume = render_volume(VolumeParams(size_um=(200.0, 100.0, 160.0), spacing_um=(2.0,) * 3),
                           seed=0).volume  # fmt: skip
    path = write_image(tmp_path / "xyz.npz", volume.transpose(2, 1, 0).copy(), spacing_um=2,
                       axes="zyx")  # fmt: skip
    with pytest.raises(InputError, match=r"xyz\.npz: .*--axes xyz"):
        read_volume(path, check_orientation=True)
    assert read_volume(path, axes="xyz", check_orientation=True).shape == volume.shape
