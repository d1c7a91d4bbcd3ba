"""Readers against hostile and careless files (issue 15, 'Readers').

Each case of the issue is a test: a named ``InputError`` instead of an unrelated
exception, a hang, a silent misreading or an unbounded allocation.
"""

import io
import os
import resource
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import tifffile

from skinoct.errors import InputError
from skinoct.io import (
    get_limits,
    read_image,
    read_limits,
    read_mask,
    read_volume,
    set_limits,
    write_image,
)


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


def _ome(path, xml: str, data):
    tifffile.imwrite(path, data, description=xml.encode("utf-8"), metadata=None,
                     photometric="minisblack")  # fmt: skip
    return path


def _ome_xml(tmp_path, data, spacing=(1.0, 1.0, 1.0)):
    ref = write_image(tmp_path / "ref.ome.tif", data, spacing_um=spacing[-data.ndim:],
                      axes="zyx" if data.ndim == 3 else "zx")  # fmt: skip
    with tifffile.TiffFile(ref) as tif:
        return tif.ome_metadata


# ------------------------------------------------------------------ npz members


def test_npz_member_not_npy_names_the_file(tmp_path):
    # was: AttributeError: 'bytes' object has no attribute 'size', no file named
    path = _npz(tmp_path / "x.npz", {"data.npy": b"this is not an NPY file at all"})
    with pytest.raises(InputError, match=r"x\.npz: .npz member 'data.npy' is not a valid NPY"):
        read_image(path)


@pytest.mark.parametrize("name", ["../evil.npy", "dir/data.npy", "data.txt", "da ta.npy"])
def test_npz_member_names_are_validated(tmp_path, name):
    path = _npz(tmp_path / "n.npz", {name: _npy_bytes(np.zeros((4, 4)))})
    with pytest.raises(InputError, match=r"n\.npz: .npz member .* is not a plain"):
        read_image(path)


@pytest.mark.parametrize(
    ("member", "payload", "message"),
    [
        ("data.npy", np.zeros((2, 3, 4, 5)), "expected a 2-D image or a 3-D volume"),
        ("data.npy", np.array(["a", "b"]), "unsupported pixel type"),
        ("data.npy", np.zeros((3, 3), complex), "unsupported pixel type"),
        ("spacing_um.npy", np.ones((2, 2)), "spacing_um.npy' must hold 1–3 numbers"),
        ("spacing_um.npy", np.array([1.0, -2.0]), "spacing_um must be positive"),
        ("axes.npy", np.str_("qq"), "axes must be 'zx', 'yx' or 'zyx'"),
        ("axes.npy", np.zeros(3), "must be a short string"),
    ],
)
def test_npz_member_dtype_and_ndim(tmp_path, member, payload, message):
    members = {"data.npy": _npy_bytes(np.ones((4, 5), np.float32))}
    members[member] = _npy_bytes(payload)
    path = _npz(tmp_path / "m.npz", members)
    with pytest.raises(InputError, match=rf"m\.npz: .*{message}"):
        read_image(path)


def test_npz_object_member_refused(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = _npz(tmp_path / "o.npz", {"data.npy": buffer.getvalue()})
    with pytest.raises(InputError, match=r"o\.npz: .*not plain numbers"):
        read_image(path)


def test_npz_that_inflates_is_capped_before_allocation(tmp_path):
    # the case: a 261 KB .npz inflating to 256 MB; here 64 MiB of zeros
    payload = _npy_bytes(np.zeros((4096, 4096), np.float32))
    path = _npz(tmp_path / "bomb.npz", {"data.npy": payload})
    assert path.stat().st_size < 200_000
    with read_limits(max_bytes=16 * 1024**2):
        with pytest.raises(InputError, match=r"bomb\.npz: .*declares shape \(4096, 4096\)"):
            read_image(path)
    assert read_image(path).shape == (4096, 4096)  # under the default limit it is read


def test_npz_member_larger_than_its_header(tmp_path):
    # header says 4 × 4 float64 (128 bytes), the deflated member holds 1 MB more
    payload = _npy_bytes(np.zeros((4, 4))) + b"\0" * 1_000_000
    path = _npz(tmp_path / "lie.npz", {"data.npy": payload})
    with pytest.raises(InputError, match=r"lie\.npz: .*inflates to"):
        read_image(path)


# ------------------------------------------------------------------ NPY headers


def test_npy_header_with_huge_shape(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    path = tmp_path / "huge.npy"
    path.write_bytes(header.getvalue() + b"\0" * 64)
    with pytest.raises(InputError, match=r"huge\.npy: .*declares shape \(1000000, 1000000\)"):
        read_image(path)


def test_npy_shorter_than_its_header(tmp_path):
    path = tmp_path / "short.npy"
    path.write_bytes(_npy_bytes(np.zeros((64, 64)))[:-100])
    with pytest.raises(InputError, match=r"short\.npy: cannot read NPY"):
        read_image(path)


def test_npy_not_npy(tmp_path):
    path = tmp_path / "text.npy"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"text\.npy: NPY header is not a valid NPY array"):
        read_image(path)


# ------------------------------------------------------------------ non-regular files


def _assert_refused_quickly(target, path):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(_catch(target, path)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), f"reading {path} hangs"
    return result[0]


def _catch(target, path):
    try:
        target(path)
    except InputError as exc:
        return exc
    return None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("name", ["pipe.npy", "pipe.tif", "pipe.npz", "pipe.png"])
@pytest.mark.parametrize("reader", [read_image, read_mask, read_volume])
def test_fifo_refused_without_hanging(tmp_path, name, reader):
    path = tmp_path / name
    os.mkfifo(path)
    exc = _assert_refused_quickly(reader, path)
    assert exc is not None and "FIFO" in str(exc) and name in str(exc)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_refused(tmp_path):
    link = tmp_path / "zero.npy"
    link.symlink_to("/dev/zero")
    exc = _assert_refused_quickly(read_image, link)
    assert exc is not None and "is a device" in str(exc)


@pytest.mark.parametrize("name", ["section.npy", "section.tif", "s.png"])
def test_directory_where_a_file_is_expected(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(InputError, match=rf"{name}: is a folder, expected a file"):
        read_image(tmp_path / name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_inside_a_slice_folder_is_skipped(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"s{i}.png", np.full((4, 5), i, np.uint8), spacing_um=1, axes="yx")
    os.mkfifo(folder / "s9.png")
    image = _assert_refused_quickly(lambda p: read_image(p, spacing_um=1), folder)
    assert image is None  # no error: the FIFO is not an image slice
    assert read_volume(folder, spacing_um=1).shape == (3, 4, 5)


# ------------------------------------------------------------------ OME sizes and units


def test_ome_declaring_two_million_planes(tmp_path):
    # the case: a 6 KB OME file declaring SizeZ=2000000 returned a 1 GB zero volume
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data).replace('SizeZ="3"', 'SizeZ="2000000"')
    xml = xml.replace('PlaneCount="3"', 'PlaneCount="2000000"')
    path = _ome(tmp_path / "z.ome.tif", xml, data)
    assert path.stat().st_size < 10_000
    with pytest.raises(InputError, match=r"z\.ome\.tif: TIFF metadata declares 2000000 planes "
                                         r"but the file holds 3"):  # fmt: skip
        read_image(path)


@pytest.mark.parametrize("size_x", ["1000000000", "1e9"])
def test_ome_declaring_a_huge_plane(tmp_path, size_x):
    # SizeX=1e9 climbed to 3.9 GB before failing; it is now refused from the metadata
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data).replace('SizeX="8"', f'SizeX="{size_x}"')
    path = _ome(tmp_path / "x.ome.tif", xml, data)
    with pytest.raises(InputError, match=r"x\.ome\.tif: OME metadata declares shape .*above"):
        read_image(path)


def test_ome_size_not_an_integer(tmp_path):
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data).replace('SizeY="8"', 'SizeY="eight"')
    path = _ome(tmp_path / "y.ome.tif", xml, data)
    with pytest.raises(InputError, match=r"y\.ome\.tif: OME SizeY='eight' is not a positive"):
        read_image(path)


@pytest.mark.parametrize("unit", ["Å", "pm", "in", "km", ""])
def test_unknown_ome_unit_refused_with_the_accepted_list(tmp_path, unit):
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data).replace('PhysicalSizeXUnit="µm"', f'PhysicalSizeXUnit="{unit}"')
    path = _ome(tmp_path / "u.ome.tif", xml, data)
    with pytest.raises(InputError, match=r"u\.ome\.tif: OME PhysicalSizeXUnit .* accepted: "
                                         r"nm, µm \(um\), mm, cm, m"):  # fmt: skip
        read_image(path)


@pytest.mark.parametrize(
    ("unit", "value", "expected_um"),
    [("nm", "500", 0.5), ("µm", "1.5", 1.5), ("um", "1.5", 1.5), ("mm", "0.002", 2.0),
     ("cm", "0.0003", 3.0), ("m", "0.000004", 4.0)],
)  # fmt: skip
def test_known_ome_units_are_converted(tmp_path, unit, value, expected_um):
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data).replace(
        'PhysicalSizeX="1.0" PhysicalSizeXUnit="µm"',
        f'PhysicalSizeX="{value}" PhysicalSizeXUnit="{unit}"',
    )
    image = read_image(_ome(tmp_path / "k.ome.tif", xml, data))
    assert image.spacing_um == pytest.approx((1.0, 1.0, expected_um))


# ------------------------------------------------------------------ spacing range


@pytest.mark.parametrize("spacing", [1e30, 1e-9, 5000.0, 0.001])
def test_implausible_spacing_in_metadata(tmp_path, spacing):
    path = tmp_path / "s.npz"
    np.savez(path, data=np.ones((8, 8), np.float32), spacing_um=np.array([spacing, 1.0]))
    with pytest.raises(InputError, match=r"s\.npz: spacing .* in the file's metadata is "
                                         r"outside the plausible range 0\.01–1000 µm"):  # fmt: skip
        read_image(path)


@pytest.mark.parametrize("spacing", [1e30, 1e-9])
def test_implausible_spacing_given(tmp_path, spacing):
    path = write_image(tmp_path / "g.npy", np.ones((8, 8), np.float32), spacing_um=1, axes="zx")
    with pytest.raises(InputError, match=r"g\.npy: spacing .* given is outside"):
        read_image(path, spacing_um=spacing)


def test_spacing_range_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    np.savez(path, data=np.ones((8, 8), np.float32), spacing_um=np.array([2000.0, 2000.0]))
    with read_limits(max_spacing_um=5000):
        assert read_image(path).spacing_um == (2000.0, 2000.0)
    monkeypatch.setenv("SKINOCT_SPACING_RANGE_UM", "0.001,1e4")
    assert read_image(path).spacing_um == (2000.0, 2000.0)
    monkeypatch.setenv("SKINOCT_SPACING_RANGE_UM", "nonsense")
    with pytest.raises(InputError, match="SKINOCT_SPACING_RANGE_UM must be 'MIN,MAX'"):
        read_image(path)


def test_size_limit_from_environment(tmp_path, monkeypatch):
    path = write_image(tmp_path / "e.npy", np.ones((64, 64), np.float32), spacing_um=1, axes="zx")
    monkeypatch.setenv("SKINOCT_MAX_IMAGE_BYTES", "8K")
    assert get_limits().max_bytes == 8192
    with pytest.raises(InputError, match=r"e\.npy: .*16 KiB.*SKINOCT_MAX_IMAGE_BYTES"):
        read_image(path)
    monkeypatch.setenv("SKINOCT_MAX_IMAGE_BYTES", "1G")
    assert read_image(path).shape == (64, 64)


def test_set_limits_validates_and_returns_previous():
    with pytest.raises(ValueError, match="max_bytes"):
        set_limits(max_bytes=0)
    with pytest.raises(ValueError, match="min_spacing_um < max_spacing_um"):
        set_limits(min_spacing_um=10, max_spacing_um=1)
    before = get_limits()
    previous = set_limits(max_bytes=1234)
    try:
        assert previous == before and get_limits().max_bytes == 1234
    finally:
        set_limits(max_bytes=previous.max_bytes)
    assert get_limits().max_bytes == 8 * 1024**3  # default: well above a full LC-OCT volume


# ------------------------------------------------------------------ TIFF truncation and size


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_multipage_ome_tiff_is_not_a_section(tmp_path, fraction):
    # the OME description is written last: truncation used to leave one valid 2-D page
    path = write_image(tmp_path / "m.ome.tif", np.random.default_rng(0).random((10, 64, 64))
                       .astype(np.float32), spacing_um=1, axes="zyx")  # fmt: skip
    payload = path.read_bytes()
    path.write_bytes(payload[: int(len(payload) * fraction)])
    with pytest.raises(InputError, match=r"m\.ome\.tif: cannot read TIFF: truncated or damaged"):
        read_image(path)


@pytest.mark.parametrize("fraction", [0.3, 0.95])
def test_truncated_plain_multipage_tiff(tmp_path, fraction):
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, np.ones((10, 64, 64), np.float32))
    payload = path.read_bytes()
    path.write_bytes(payload[: int(len(payload) * fraction)])
    with pytest.raises(InputError, match=r"p\.tif: cannot read TIF"):
        read_image(path)


def test_tiff_series_above_limit(tmp_path):
    path = write_image(tmp_path / "big.tif", np.ones((4, 64, 64), np.uint16), spacing_um=1,
                       axes="zyx")  # fmt: skip
    with read_limits(max_bytes=4096):
        with pytest.raises(InputError, match=r"big\.tif: .*declares shape \(.*4, 64, 64\)"):
            read_image(path)


def test_png_above_limit(tmp_path):
    path = write_image(tmp_path / "p.png", np.ones((64, 64), np.uint8), spacing_um=1, axes="zx")
    with read_limits(max_bytes=1000):
        with pytest.raises(InputError, match=r"p\.png: image declares shape \(64, 64, 1\)"):
            read_image(path)


def test_slice_folder_above_limit(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"s{i}.png", np.full((16, 16), i, np.uint8), spacing_um=1, axes="yx")
    with read_limits(max_bytes=600):
        with pytest.raises(InputError, match=r"stack: folder of slices declares shape \(4, 16"):
            read_volume(folder, spacing_um=1)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics")
def test_forged_headers_do_not_allocate(tmp_path):
    """Every forged-size file is refused in a process limited to 1.5 GB of address space."""
    data = np.ones((3, 8, 8), np.uint16)
    xml = _ome_xml(tmp_path, data)
    _ome(tmp_path / "z.ome.tif", xml.replace('SizeZ="3"', 'SizeZ="2000000"')
         .replace('PlaneCount="3"', 'PlaneCount="2000000"'), data)  # fmt: skip
    _ome(tmp_path / "x.ome.tif", xml.replace('SizeX="8"', 'SizeX="1000000000"'), data)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    (tmp_path / "h.npy").write_bytes(header.getvalue())
    _npz(tmp_path / "h.npz", {"data.npy": header.getvalue() + b"\0" * 1000})
    script = (
        "import resource, sys; from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))\n"
        "from skinoct.io import read_image\nfrom skinoct.errors import InputError\n"
        "for p in sorted(Path(sys.argv[1]).glob('[zxh].*')):\n"
        "    try: read_image(p)\n"
        "    except InputError as e: print('refused', p.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(done.stdout.split()) == sorted(
        "refused h.npy refused h.npz refused x.ome.tif refused z.ome.tif".split()
    )
    assert resource  # the limit is set inside the child process


# ------------------------------------------------------------------ axes given in file order


def test_axes_in_file_order_are_transposed(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "t.npz"
    np.savez(path, data=data, spacing_um=np.array([2.0, 0.5]))
    image = read_image(path, axes="xz")
    assert image.axes == "zx" and image.shape == (4, 3)
    np.testing.assert_array_equal(image.data, data.T)
    assert image.spacing_um == (0.5, 2.0)  # metadata spacing follows its axis
    volume = np.zeros((5, 4, 3), np.float32)
    vpath = write_image(tmp_path / "v.npz", volume, spacing_um=(1, 2, 3), axes="zyx")
    assert read_volume(vpath, axes="xyz").spacing_um == (3.0, 2.0, 1.0)
    assert read_volume(vpath, axes="xyz").shape == (3, 4, 5)
    with pytest.raises(InputError, match="axes must be 'zx', 'yx' or 'zyx'"):
        read_image(path, axes="zz")


# ------------------------------------------------------------------ the DEJ surface reader


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("name", ["dej.npy", "dej.npz", "dej.tif"])
def test_dej_file_fifo_refused(tmp_path, name):
    from skinoct.matrix import read_dej

    os.mkfifo(tmp_path / name)
    exc = _assert_refused_quickly(lambda p: read_dej(p, shape_yx=(4, 4)), tmp_path / name)
    assert exc is not None and name in str(exc)


def test_dej_npz_member_not_npy(tmp_path):
    from skinoct.matrix import read_dej

    path = _npz(tmp_path / "dej.npz", {"dej_um.npy": b"not an array"})
    with pytest.raises(InputError, match=r"dej\.npz: cannot read DEJ surface"):
        read_dej(path, shape_yx=(4, 4))
