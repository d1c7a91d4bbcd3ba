"""Writing images, volumes and masks, atomically and with their spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinoct.errors import InputError
from skinoct.io._atomic import atomic_path
from skinoct.io._image import Image, check_spacing

__all__ = ["to_uint8", "write_image"]

_OME_AXES = {"zx": "YX", "yx": "YX", "zyx": "ZYX"}


def write_image(
    path: str | Path,
    image: Image | np.ndarray,
    *,
    spacing_um=None,
    axes: str | None = None,
    compression: str | None = None,
) -> Path:
    """Write an image, volume or mask; the format follows the file suffix.

    ``.tif``/``.tiff`` (written as OME-TIFF with ``PhysicalSize*`` in µm), ``.png``,
    ``.jpg``, ``.bmp`` (8- or 16-bit integer data only; no spacing is stored),
    ``.npy`` (data only) or ``.npz`` (data, ``spacing_um`` and ``axes``). The file
    appears only once completely written.

    Parameters
    ----------
    path : str or Path
        Destination.
    image : Image or ndarray
        What to write. With an ndarray, ``spacing_um`` and ``axes`` are required.
    spacing_um, axes : optional
        Override the values carried by ``image``.
    compression : str, optional
        TIFF compression (e.g. ``'zlib'``); default uncompressed so volumes can be
        memory-mapped.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if isinstance(image, Image):
        data = image.data
        spacing_um = image.spacing_um if spacing_um is None else spacing_um
        axes = image.axes if axes is None else axes
    else:
        data = np.asarray(image)
        if spacing_um is None or axes is None:
            raise TypeError("write_image needs spacing_um and axes when given a plain array")
    if axes not in _OME_AXES or len(axes) != data.ndim:
        raise ValueError(f"axes {axes!r} do not fit data of shape {data.shape}")
    spacing = check_spacing(spacing_um, data.ndim)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            _write_ome_tiff(tmp, data, spacing, axes, compression)
        elif suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            _write_pil(tmp, data, path)
        elif suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, data, allow_pickle=False)
        elif suffix == ".npz":
            _write_npz(tmp, data=data, spacing_um=np.asarray(spacing), axes=np.str_(axes))
        else:
            raise InputError(f"cannot write files of type {suffix!r}", path=path)
    return path


def _write_npz(tmp: Path, **arrays) -> None:
    """Like ``np.savez_compressed`` with a fixed timestamp, so equal input gives equal bytes."""
    import io
    import zipfile

    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def _write_ome_tiff(tmp: Path, data, spacing, axes: str, compression) -> None:
    import tifffile

    metadata = {
        "axes": _OME_AXES[axes],
        "PhysicalSizeX": spacing[-1],
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": spacing[-2],
        "PhysicalSizeYUnit": "µm",
        # OME names the axes of a plane Y and X; this keeps vertical and en-face apart.
        "Description": f"skinoct:axes={axes}",
        # From the content, not the clock (tifffile's default): reproducible files.
        "UUID": _content_uuid(data, spacing, axes),
    }
    if axes == "zyx":
        metadata.update(PhysicalSizeZ=spacing[0], PhysicalSizeZUnit="µm")
    tifffile.imwrite(
        tmp, np.ascontiguousarray(data), ome=True, photometric="minisblack",
        metadata=metadata, compression=compression,
    )  # fmt: skip


def _content_uuid(data: np.ndarray, spacing, axes: str) -> str:
    """A UUID derived from the pixels, dtype, shape, spacing and axes."""
    import hashlib
    import uuid

    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((data.shape, data.dtype.str, tuple(spacing), axes)).encode())
    digest.update(memoryview(np.ascontiguousarray(data)).cast("B"))
    return str(uuid.UUID(bytes=digest.digest(), version=4))


def _write_pil(tmp: Path, data: np.ndarray, path: Path) -> None:
    from PIL import Image as PILImage

    if data.ndim != 2:
        raise InputError("only 2-D images can be written as PNG/JPEG/BMP", path=path)
    if data.dtype == np.uint16 and path.suffix.lower() == ".png":
        PILImage.fromarray(data).save(tmp, format="PNG")
        return
    if data.dtype != np.uint8:
        raise InputError(
            f"{path.suffix} files hold 8-bit data; convert {data.dtype} first "
            "(skinoct.io.to_uint8) or write a TIFF",
            path=path,
        )
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}[path.suffix.lower()]
    PILImage.fromarray(data).save(tmp, format=fmt)


def to_uint8(data: np.ndarray, *, lower_percentile: float = 0.5, upper_percentile: float = 99.5):
    """Scale intensities to 0–255 for display (robust percentiles, clipped)."""
    from skinoct.io._normalize import normalize_intensity

    scaled = normalize_intensity(
        data, lower_percentile=lower_percentile, upper_percentile=upper_percentile, clip=True
    )
    return (scaled * 255 + 0.5).astype(np.uint8)
