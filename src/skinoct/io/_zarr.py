"""OME-Zarr (OME-NGFF 0.4 / 0.5): lazy reading of level 0, writing with a ``labels`` group.

OME-Zarr stores an image as a Zarr group whose ``multiscales`` metadata lists the
resolution levels (``datasets``) with their ``coordinateTransformations`` (the pixel
spacing) and names the axes with their units. NGFF 0.4 uses Zarr format 2
(``.zattrs``); 0.5 uses Zarr format 3 (``zarr.json``, metadata under ``"ome"``).
Specification: https://ngff.openmicroscopy.org/0.4/ and https://ngff.openmicroscopy.org/0.5/.

Reading returns an :class:`~skinoct.io.Image` whose ``data`` is a :class:`LazyArray`:
slicing it reads only the chunks touched, so ``analyze`` streams a volume section by
section. Written files open in napari (napari-ome-zarr) with the layer labels as a
labels layer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from skinoct.errors import InputError
from skinoct.io._image import Image, check_spacing

__all__ = [
    "LazyArray",
    "is_zarr",
    "read_ome_zarr",
    "read_ome_zarr_labels",
    "tree_sha256",
    "write_ome_zarr",
]

#: Colours of the labels in written files (RGBA 0–255), as in seed 000's Figure 1.
LABEL_COLORS = {1: (230, 159, 0, 255), 2: (86, 180, 233, 255), 3: (204, 121, 167, 255)}
#: Name of the skin-layer label image inside the ``labels`` group.
LAYERS_LABEL_NAME = "layers"

_UNIT_TO_UM = {
    "nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "centimeter": 1e4,
    "meter": 1e6, "µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3,
}  # fmt: skip
_SPATIAL = ("z", "y", "x")


def is_zarr(path: str | Path) -> bool:
    """True for a folder that is a Zarr group (``*.zarr``, ``.zattrs`` or ``zarr.json``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if path.name.lower().endswith(".zarr"):
        return True
    return (path / "zarr.json").is_file() or (path / ".zattrs").is_file()


class LazyArray:
    """A read-only view of a Zarr array that drops singleton non-spatial axes.

    Indexing reads only the chunks it touches and returns a NumPy array. Integer-array
    (fancy) indices follow NumPy's rules: the bounding box of the requested points is
    read, then indexed in memory. ``np.asarray(lazy)`` loads everything.
    """

    def __init__(self, array, keep: tuple[int, ...]):
        self._array = array
        self._keep = keep
        self.shape = tuple(int(array.shape[i]) for i in keep)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(array.chunks[i]) for i in keep)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype}, chunks={self.chunks})"

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)

    def min(self, axis=None, out=None, **kwargs):
        """Smallest value, read block by block (``np.min(lazy)`` calls this)."""
        return self._reduce(np.min, axis, out)

    def max(self, axis=None, out=None, **kwargs):
        """Largest value, read block by block (``np.max(lazy)`` calls this)."""
        return self._reduce(np.max, axis, out)

    def _reduce(self, func, axis, out):
        if axis is not None or out is not None:
            return func(np.asarray(self), axis=axis, out=out)
        step = max(1, self.chunks[0])
        return func([func(self[i : i + step]) for i in range(0, self.shape[0], step)])

    def __getitem__(self, key) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        arrays = [i for i, k in enumerate(key) if isinstance(k, np.ndarray)]
        if not arrays:
            return np.asarray(self._array[self._full(key)])
        # Fancy indexing: read the bounding box, index it in memory (NumPy semantics).
        box, local = [], []
        for i, k in enumerate(key):
            if isinstance(k, np.ndarray):
                k = np.where(k < 0, k + self.shape[i], k)
                if k.size and (k.min() < 0 or k.max() >= self.shape[i]):
                    raise IndexError(f"index out of range on axis {i} of size {self.shape[i]}")
                lo = int(k.min()) if k.size else 0
                box.append(slice(lo, int(k.max()) + 1 if k.size else 0))
                local.append(k - lo)
            elif isinstance(k, int):  # kept as a length-1 slice: NumPy's mixing rules hold
                k = k + self.shape[i] if k < 0 else k
                box.append(slice(k, k + 1))
                local.append(0)
            else:
                box.append(k)
                local.append(slice(None))
        block = np.asarray(self._array[self._full(tuple(box))])
        return block[tuple(local)]

    def _full(self, key: tuple) -> tuple:
        full: list = [0] * self._array.ndim
        for axis, k in zip(self._keep, key, strict=True):
            full[axis] = k
        return tuple(full)


def _expand_key(key, ndim: int) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices for a {ndim}-D array")
    key = key + (slice(None),) * (ndim - len(key))
    out = []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype == bool:
                raise IndexError("boolean masks are not supported by LazyArray")
            out.append(k.astype(np.intp))
        elif isinstance(k, (int, np.integer)):
            out.append(int(k))
        else:
            out.append(k)
    return tuple(out)


# --------------------------------------------------------------------------- reading


def _open_group(path: Path):
    try:
        import zarr
    except ImportError as exc:  # optional dependency
        raise InputError(
            "reading OME-Zarr needs the 'zarr' package: pip install 'skinoct[zarr]'", path=path
        ) from exc
    try:
        return zarr.open_group(store=str(path), mode="r")
    except Exception as exc:  # any parser failure is a bad file, reported in one line
        raise InputError(f"cannot open Zarr group: {_one_line(exc)}", path=path) from exc


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _ome_attrs(group) -> dict:
    """The NGFF attributes of a group: under ``"ome"`` (0.5) or at the top (0.4)."""
    attrs = dict(group.attrs)
    return dict(attrs["ome"]) if isinstance(attrs.get("ome"), dict) else attrs


def _level0(path: Path, group):
    attrs = _ome_attrs(group)
    multiscales = attrs.get("multiscales")
    if not multiscales:
        raise InputError("Zarr group has no OME-NGFF 'multiscales' metadata", path=path)
    ms = multiscales[0]
    axes = ms.get("axes") or [{"name": n} for n in "tczyx"[-_ndim_of(group, ms) :]]
    axes = [{"name": a} if isinstance(a, str) else a for a in axes]  # NGFF 0.3 wrote names
    dataset = ms["datasets"][0]
    try:
        array = group[dataset["path"]]
    except KeyError as exc:
        raise InputError(f"multiscale level {dataset['path']!r} is missing", path=path) from exc
    if len(axes) != array.ndim:
        raise InputError(
            f"metadata names {len(axes)} axes but level 0 has {array.ndim}", path=path
        )
    scale = np.ones(array.ndim)
    key = "coordinateTransformations"
    for transforms in (dataset.get(key), ms.get(key)):
        for t in transforms or []:
            if t.get("type") == "scale" and "scale" in t:
                scale = scale * np.asarray(t["scale"], dtype=float)
    return array, axes, scale


def _ndim_of(group, ms) -> int:
    return group[ms["datasets"][0]["path"]].ndim


def read_ome_zarr(
    path: str | Path,
    *,
    spacing_um=None,
    axes: str | None = None,
) -> Image:
    """Read level 0 of an OME-Zarr image lazily, with its spacing in µm.

    Parameters
    ----------
    path : str or Path
        The image group (``*.ome.zarr`` folder).
    spacing_um : float or sequence of float, optional
        Overrides the spacing of the ``coordinateTransformations``.
    axes : {'zx', 'yx', 'zyx'}, optional
        How to read 2-D data (default: what skinoct wrote, else ``'zx'``).

    Returns
    -------
    Image
        ``data`` is a :class:`LazyArray` (nothing is read until sliced).

    Raises
    ------
    InputError
        Not an OME-Zarr image, a non-spatial axis longer than 1, not 2 or 3 spatial
        axes, an unknown unit, or an invalid spacing.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    group = _open_group(path)
    array, axes_meta, scale = _level0(path, group)
    keep, spacing = [], []
    for i, axis in enumerate(axes_meta):
        name = str(axis.get("name", "")).lower()
        spatial = axis.get("type") == "space" or name in _SPATIAL
        if not spatial:
            if array.shape[i] != 1:
                raise InputError(
                    f"axis {name!r} has length {array.shape[i]}; skinoct reads one "
                    "channel and one time point",
                    path=path,
                )
            continue
        unit = str(axis.get("unit", "micrometer")).lower()
        if unit not in _UNIT_TO_UM:
            raise InputError(f"unknown unit {unit!r} on axis {name!r}", path=path)
        keep.append(i)
        spacing.append(float(scale[i]) * _UNIT_TO_UM[unit])
    if len(keep) not in (2, 3):
        raise InputError(f"expected 2 or 3 spatial axes, found {len(keep)}", path=path)
    data = LazyArray(array, tuple(keep))
    if data.dtype.kind not in "uif":
        raise InputError(f"unsupported pixel type {data.dtype}", path=path)
    hint = (dict(group.attrs).get("skinoct") or {}).get("axes")
    if axes is None:
        axes = "zyx" if data.ndim == 3 else (hint if hint in ("zx", "yx") else "zx")
    if len(axes) != data.ndim:
        want = "a 3-D volume" if len(axes) == 3 else "a 2-D image"
        raise InputError(
            f"expected {want}, got {data.ndim}-D data of shape {data.shape}", path=path
        )
    source = "override" if spacing_um is not None else "metadata"
    spacing = check_spacing(spacing if spacing_um is None else spacing_um, data.ndim, path=path)
    return Image(data=data, spacing_um=spacing, axes=axes, path=path, spacing_source=source)


def read_ome_zarr_labels(path: str | Path, *, name: str = LAYERS_LABEL_NAME) -> Image | None:
    """Read the label image ``labels/<name>`` of an OME-Zarr image, or None if absent.

    The mask is loaded (labels are small, ``uint8``) and validated (0–3).
    """
    from skinoct.io._labels import validate_labels

    path = Path(path)
    group = _open_group(path)
    if "labels" not in group or name not in group["labels"]:
        return None
    image = read_ome_zarr(path / "labels" / name)
    data = validate_labels(np.asarray(image.data), path=path / "labels" / name)
    return image.with_data(data)


# --------------------------------------------------------------------------- writing


def write_ome_zarr(
    path: str | Path,
    image: Image,
    *,
    labels: np.ndarray | Image | None = None,
    version: Literal["0.4", "0.5"] = "0.4",
    chunks: tuple[int, ...] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an image (and optionally its skin-layer labels) as OME-Zarr, atomically.

    Parameters
    ----------
    path : str or Path
        Destination folder (conventionally ``*.ome.zarr``).
    image : Image
        The image or volume; its ``spacing_um`` becomes the level-0 scale (µm).
    labels : ndarray or Image, optional
        A label mask (0–3) of the same shape, written as ``labels/layers`` with the
        skin-layer colours.
    version : {'0.4', '0.5'}
        NGFF version: 0.4 writes Zarr format 2, 0.5 Zarr format 3.
    chunks : tuple of int, optional
        Chunk shape (default: one section ``(z, 1, x)`` of a volume, at most 1024 along
        a lateral axis, so that ``analyze`` reads a section per chunk row).
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        ``path``; it appears only once completely written.

    Raises
    ------
    InputError
        ``path`` exists and ``overwrite`` is False; labels of another shape or with
        values outside 0–3; an unknown version.
    """
    import zarr

    from skinoct.io._labels import validate_labels

    path = Path(path)
    if version not in ("0.4", "0.5"):
        raise InputError(f"version must be '0.4' or '0.5', got {version!r}", path=path)
    if path.exists() and not overwrite:
        raise InputError("already exists; pass overwrite=True to replace it", path=path)
    mask = None
    if labels is not None:
        mask = validate_labels(np.asarray(getattr(labels, "data", labels)), path=path)
        if mask.shape != image.shape:
            raise InputError(
                f"labels have shape {mask.shape}, the image {image.shape}", path=path
            )
    fmt = 2 if version == "0.4" else 3
    chunks = tuple(chunks) if chunks is not None else _default_chunks(image.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        root = zarr.open_group(store=str(tmp), mode="w", zarr_format=fmt)
        spacing, axes = image.spacing_um, image.axes
        _write_multiscale(root, image.data, spacing, axes, version, chunks, name=None)
        if mask is not None:
            group = root.create_group("labels")
            _set_ome(group, {"labels": [LAYERS_LABEL_NAME]}, version)
            sub = group.create_group(LAYERS_LABEL_NAME)
            _write_multiscale(sub, mask, image.spacing_um, image.axes, version, chunks,
                              name=LAYERS_LABEL_NAME)  # fmt: skip
            colors = [{"label-value": v, "rgba": list(c)} for v, c in LABEL_COLORS.items()]
            image_label = {"version": version, "colors": colors, "source": {"image": "../../"}}
            _set_ome(sub, {"image-label": image_label}, version, merge=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 3:
        return (shape[0], 1, min(shape[2], 1024))
    return tuple(min(n, 1024) for n in shape)


def _set_ome(group, values: dict, version: str, *, merge: bool = False) -> None:
    if version == "0.5":
        ome = dict(group.attrs.get("ome", {})) if merge else {}
        ome.update(values)
        ome["version"] = version
        group.attrs["ome"] = ome
    else:
        group.attrs.update(values)


def _write_multiscale(group, data, spacing, axes: str, version, chunks, *, name) -> None:
    names = "zyx" if axes == "zyx" else "yx"  # NGFF names a plane's axes y, x
    kwargs = {"dimension_names": tuple(names)} if version == "0.5" else {}
    array = group.create_array(
        "0", shape=data.shape, chunks=chunks, dtype=np.dtype(data.dtype), fill_value=0, **kwargs
    )
    if isinstance(data, LazyArray):
        for start in range(0, data.shape[0], chunks[0]):
            array[start : start + chunks[0]] = data[start : start + chunks[0]]
    else:
        array[...] = np.asarray(data)
    multiscale = {
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in names],
        "datasets": [
            {"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [float(s) for s in spacing]}
            ]}
        ],
        "name": name or "image",
    }  # fmt: skip
    if version == "0.4":
        multiscale["version"] = "0.4"
    _set_ome(group, {"multiscales": [multiscale]}, version)
    group.attrs["skinoct"] = {"axes": axes}  # vertical vs en-face plane (NGFF says y, x)


def tree_sha256(path: str | Path) -> str:
    """SHA-256 over the files of a folder (names and contents, sorted), read in blocks."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root).as_posix()).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
