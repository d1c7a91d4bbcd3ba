"""Fuzzing the image readers (issue 15, point 9).

Valid TIFF / OME-TIFF / ImageJ-TIFF / NPY / NPZ / PNG files are truncated, have bytes
overwritten or inserted, have the numbers of their headers (shapes, sizes, offsets)
replaced by hostile ones, or are replaced by random bytes. Every read must end in an
:class:`~skinoct.io.Image` or an :class:`~skinoct.errors.InputError` naming the file,
within :data:`~conftest.CALL_TIMEOUT_S` and :data:`~conftest.PEAK_BYTES` of traced
allocations (the reader limit is lowered to 32 MiB for the run). Anything else fails
the test with the shrunk example. See ``_fuzzing.py`` for the longer run.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
import scipy.ndimage  # noqa: F401  (imported before tracing starts: slow under tracemalloc)
import tifffile
from _fuzzing import READER_LIMIT, TALLY, fuzz_settings, guarded
from hypothesis import given
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.io import Image, read_image, read_limits, read_mask, read_volume, write_image

_NUMBER = re.compile(rb"\d+")
_HOSTILE = [0, 1, 2, 255, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 10**12, 10**18]


def _seed_files() -> dict[str, bytes]:
    """Small valid files of every format the readers understand."""
    rng = np.random.default_rng(0)
    section = rng.integers(0, 4000, (12, 16)).astype(np.uint16)
    volume = rng.random((3, 6, 8)).astype(np.float32)
    mask = np.zeros((12, 16), np.uint8)
    mask[3:6], mask[6:9], mask[9:] = 1, 2, 3
    seeds: dict[str, bytes] = {}

    def via(name: str, writer) -> None:
        buffer = io.BytesIO()
        writer(buffer)
        seeds[name] = buffer.getvalue()

    def image_file(name: str, data, **kwargs) -> None:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = write_image(Path(tmp) / name, data, **kwargs)
            seeds[name] = path.read_bytes()

    image_file("section.ome.tif", section, spacing_um=(1.0, 1.5), axes="zx")
    image_file("volume.ome.tif", volume, spacing_um=(2.0, 1.0, 1.0), axes="zyx")
    image_file("mask.ome.tif", mask, spacing_um=1.0, axes="zx")
    image_file("section.npz", section, spacing_um=(1.0, 1.5), axes="zx")
    image_file("section.png", (section // 16).astype(np.uint8), spacing_um=1, axes="zx")
    via("plain.tif", lambda b: tifffile.imwrite(b, volume))
    via("zlib.tif", lambda b: tifffile.imwrite(b, section, compression="zlib"))
    via("imagej.tif", lambda b: tifffile.imwrite(
        b, volume, imagej=True, resolution=(2.0, 2.0),
        metadata={"spacing": 1.5, "unit": "um", "axes": "ZYX"}))  # fmt: skip
    via("volume.npy", lambda b: np.save(b, volume))
    via("fortran.npy", lambda b: np.save(b, np.asfortranarray(section)))
    via("mask.npy", lambda b: np.save(b, mask))

    def npz(buffer) -> None:
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, array in (("data", volume), ("spacing_um", np.array([2.0, 1.0, 1.0])),
                                ("axes", np.str_("zyx"))):  # fmt: skip
                member = io.BytesIO()
                np.lib.format.write_array(member, array)
                archive.writestr(f"{name}.npy", member.getvalue())

    via("volume.npz", npz)
    from PIL import Image as PILImage

    via("rgb.png", lambda b: PILImage.fromarray(
        np.stack([section.astype(np.uint8)] * 3, -1)).save(b, format="PNG"))  # fmt: skip
    via("deep.png", lambda b: PILImage.fromarray(section).save(b, format="PNG"))
    return seeds


SEEDS = _seed_files()


@st.composite
def mutated_files(draw):
    """``(name, bytes, mutation)``: a seed file changed the way a careless or hostile
    source would change it."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    kind = draw(st.sampled_from(
        ["truncate", "overwrite", "header", "insert", "numbers", "numbers_same_length",
         "random", "none"]))  # fmt: skip
    if kind == "truncate":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif kind in ("overwrite", "header"):
        end = len(data) if kind == "overwrite" else min(len(data), 512)
        for _ in range(draw(st.integers(1, 12))):
            data[draw(st.integers(0, end - 1))] = draw(st.integers(0, 255))
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif kind.startswith("numbers"):
        numbers = list(_NUMBER.finditer(bytes(data)))
        if numbers:
            match = numbers[draw(st.integers(0, len(numbers) - 1))]
            value = draw(st.sampled_from(_HOSTILE) | st.integers(0, 10**15))
            text = str(value).encode()
            if kind == "numbers_same_length":  # keeps every offset of the file valid
                width = match.end() - match.start()
                text = text[:width].rjust(width, b"0")
            data[match.start() : match.end()] = text
    elif kind == "random":
        data = bytearray(draw(st.binary(max_size=4096)))
    return name, bytes(data), kind


def _check_one(path, reader: str, *, mmap: bool, orientation: bool):
    label = f"{reader}({path.name}, mmap={mmap}, orientation={orientation})"
    with guarded(label):
        try:
            if reader == "read_mask":
                result = read_mask(path)
            elif reader == "read_volume":
                result = read_volume(path, mmap=mmap, check_orientation=orientation)
            else:
                result = read_image(path, mmap=mmap, check_orientation=orientation)
        except InputError as exc:
            assert path.name in str(exc), f"{label}: error names no file: {exc}"
            return "input_error"
    assert isinstance(result, Image), f"{label}: returned {type(result).__name__}"
    assert np.isfinite(np.asarray(result.data, dtype=np.float64)).all() or result.data.size == 0
    return "result"


@fuzz_settings(ci_examples=100)
@given(
    case=mutated_files(),
    reader=st.sampled_from(["read_image", "read_mask", "read_volume"]),
    mmap=st.booleans(),
    orientation=st.booleans(),
)
def test_readers_end_in_a_result_or_a_named_input_error(tmp_path_factory, case, reader, mmap,
                                                        orientation):  # fmt: skip
    name, payload, kind = case
    folder = tmp_path_factory.mktemp("fuzz", numbered=True)
    path = folder / f"case_{name}"
    path.write_bytes(payload)
    with read_limits(max_bytes=READER_LIMIT):
        outcome = _check_one(path, reader, mmap=mmap, orientation=orientation)
    TALLY["readers: tried"] += 1
    TALLY[f"readers: {outcome}"] += 1
    TALLY[f"readers: {kind}"] += 1


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_is_read(tmp_path, name):
    """The mutations start from files the readers accept."""
    path = tmp_path / name
    path.write_bytes(SEEDS[name])
    reader = read_mask if name.startswith("mask") else read_image
    assert isinstance(reader(path), Image)
