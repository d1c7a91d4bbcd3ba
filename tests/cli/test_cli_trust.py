"""The CLI against careless and hostile input (issue 15, 'CLI' and 'Orientation').

Paths holding rich markup (``[/]``, ``[red]``) are printed verbatim; ``--entropy DIR``
pairs a ``layers segment`` mask with its ``_entropy.tif``; a section saved as x × z
and a volume saved as x, y, z fail fast with the ``--axes`` to use.
"""

import json
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from skinoct.io import write_image
from skinoct.phantom import SectionParams, VolumeParams, render_section, render_volume


@pytest.fixture
def section():
    return render_section(SectionParams(width_um=400.0, depth_um=240.0, spacing_um=(2.0, 2.0)))


@pytest.mark.parametrize("folder", ["scan[", "a[red]b[bold"])
def test_inspect_prints_markup_like_paths_verbatim(run_cli, tmp_path, folder):
    # '<tmp>/scan[/]1.npy' raised a rich MarkupError; '[red]' was swallowed
    directory = tmp_path / folder
    directory.mkdir()
    path = write_image(directory / "]1[red].npy", np.zeros((4, 5), np.float32), spacing_um=1,
                       axes="zx")  # fmt: skip
    code, out, err = run_cli("inspect", path)
    assert code == 0, err
    assert str(path) in out.replace("\n", "")


def test_measure_prints_markup_like_paths_verbatim(run_cli, tmp_path, section):
    directory = tmp_path / "scan["
    directory.mkdir()
    path = write_image(directory / "]s[red]_mask.tif", section.labels, spacing_um=2, axes="zx")
    code, out, err = run_cli("layers", "measure", path)
    assert code == 0, err
    assert str(path) in out.replace("\n", "") and "epidermis_thickness_um" in out


def test_error_message_with_markup_is_verbatim(run_cli, tmp_path):
    code, _, err = run_cli("inspect", tmp_path / "[red]x[/]" / "y[bold].tif")
    assert code == 2 and "[red]x[/]/y[bold].tif: file not found" in err


def test_measure_entropy_dir_pairs_with_segment_tif(run_cli, tmp_path, section):
    # 'layers segment' writes <stem>_mask.tif, <stem>_entropy.tif and <stem>_entropy.png;
    # the PNG (a colour picture) sorted first and was picked
    out = tmp_path / "seg"
    out.mkdir()
    mask = write_image(out / "s_mask.tif", section.labels, spacing_um=2, axes="zx")
    entropy = np.full(section.labels.shape, 0.25, np.float32)
    write_image(out / "s_entropy.tif", entropy, spacing_um=2, axes="zx")
    rgb = np.zeros((*entropy.shape, 3), np.uint8)
    rgb[..., 0] = 255
    PILImage.fromarray(rgb).save(out / "s_entropy.png")
    code, stdout, err = run_cli("layers", "measure", mask, "--entropy", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["dej_entropy_mean"] == pytest.approx(0.25, abs=1e-6)


def test_segment_refuses_a_section_saved_as_x_by_z(run_cli, tmp_path, section, monkeypatch):
    # was: exit 0 and an epidermis thickness of -2.26 µm
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "cache"))
    path = write_image(tmp_path / "xz.tif", section.image.T.copy(), spacing_um=2, axes="zx")
    code, _, err = run_cli("layers", "segment", path, "--out", tmp_path / "o")
    assert code == 2
    assert "xz.tif: the depth axis looks wrong" in err and "--axes xz" in err
    assert not (tmp_path / "o" / "xz_mask.tif").exists()


def test_segment_axes_override(run_cli, tmp_path, section, monkeypatch):
    monkeypatch.setenv("SKINOCT_CACHE_DIR", str(tmp_path / "cache"))
    path = write_image(tmp_path / "xz.tif", section.image.T.copy(), spacing_um=2, axes="zx")
    code, _, err = run_cli("layers", "segment", path, "--out", tmp_path / "o", "--axes", "xz")
    assert code == 0, err
    from skinoct.io import read_mask

    assert read_mask(tmp_path / "o" / "xz_mask.tif").shape == section.image.shape
    code, _, err = run_cli("layers", "segment", path, "--out", tmp_path / "p", "--axes", "zz")
    assert code == 2 and "--axes must order the letters of 'zx'" in err


def test_analyze_refuses_a_volume_in_x_y_z_fast(run_cli, tmp_path):
    # was: 6-7 s of work, then a misleading tile-size message
    volume = render_volume(VolumeParams(size_um=(200.0, 100.0, 160.0), spacing_um=(2.0,) * 3),
                           seed=0).volume  # fmt: skip
    path = write_image(tmp_path / "xyz.ome.tif", volume.transpose(2, 1, 0).copy(), spacing_um=2,
                       axes="zyx")  # fmt: skip
    start = time.perf_counter()
    code, _, err = run_cli("analyze", path, "--out", tmp_path / "o")
    elapsed = time.perf_counter() - start
    assert code == 2
    assert "xyz.ome.tif: the depth axis looks wrong" in err and "--axes xyz" in err
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert not (tmp_path / "o").exists()


def test_analyze_axes_option_is_validated(run_cli, tmp_path):
    path = write_image(tmp_path / "v.npz", np.zeros((4, 5, 6), np.float32), spacing_um=2,
                       axes="zyx")  # fmt: skip
    code, _, err = run_cli("analyze", path, "--out", tmp_path / "o", "--axes", "zx")
    assert code == 2 and "--axes must order the letters of 'zyx'" in err


def test_read_volume_checked_transposes_with_axes(tmp_path):
    from skinoct.cli._axes import read_volume_checked

    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    path = write_image(tmp_path / "v.npz", data, spacing_um=(1, 2, 3), axes="zyx")
    image = read_volume_checked(path, axes="xyz")
    assert image.shape == (4, 5, 6) and image.spacing_um == (3.0, 2.0, 1.0)


@pytest.mark.parametrize("spacing", ["1e30", "1e-9"])
def test_implausible_spacing_on_the_command_line(run_cli, tmp_path, section, spacing):
    # was: 'Maximum allowed size exceeded' / MemoryError, or thicknesses of 0.0 / 6e13 µm
    path = write_image(tmp_path / "m.tif", section.labels, spacing_um=2, axes="zx")
    code, _, err = run_cli("layers", "measure", path, "--spacing", spacing)
    assert code == 2
    assert "m.tif: spacing" in err and "outside the plausible range 0.01–1000 µm" in err


def test_fifo_on_the_command_line_does_not_hang(run_cli, tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("needs POSIX FIFOs")
    os.mkfifo(tmp_path / "pipe.tif")
    code, _, err = run_cli("inspect", tmp_path / "pipe.tif")
    assert code == 2 and "pipe.tif: is a FIFO" in err
