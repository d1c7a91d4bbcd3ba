"""The ``model.json`` schema: every field a model's behaviour depends on, checked on load.

A manifest is read with bounded size and nesting depth (a hostile file cannot exhaust
memory or the recursion limit), then its fields are checked for type and range
before anything is built from them: ``weights_file`` must name a file inside the
model folder, ``preprocessing.spacing_um`` must be a plausible pixel size, the class
set must be valid, architecture arguments must be numbers of the right kind with
bounded channel counts. Every failure is a :class:`~skinoct.errors.ModelError` that
names the manifest.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skinoct.errors import ModelError

__all__ = [
    "MAX_MANIFEST_BYTES",
    "MAX_NESTING",
    "SPACING_RANGE_UM",
    "read_manifest",
    "validate_manifest",
]

#: Largest ``model.json`` read (the bundled ones are about 3 and 15 kB).
MAX_MANIFEST_BYTES = 4 << 20
#: Deepest nesting of lists / objects accepted in a manifest.
MAX_NESTING = 32
#: Plausible model pixel size in µm (LC-OCT: about 1 µm; 0.05–50 µm allows other devices).
SPACING_RANGE_UM = (0.05, 50.0)
_MAX_CHANNELS = 2048
_LAYERS_ARCHITECTURE = "monai.networks.nets.UNet"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _nesting_depth(text: str) -> int:
    """Deepest ``[`` / ``{`` nesting of a JSON text, without parsing it (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def read_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse ``model.json`` (size and depth bounded); return it and its raw bytes.

    Raises
    ------
    ModelError
        Too large, too deeply nested, not UTF-8 JSON, or not an object.
    """
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            message = f"manifest is {size:,} bytes, more than {MAX_MANIFEST_BYTES:,}"
            raise ModelError(message, path=path)
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"not a skinoct model: unreadable manifest ({exc})", path=path) from None
    if _nesting_depth(text) > MAX_NESTING:
        raise ModelError(f"manifest is nested more than {MAX_NESTING} levels deep", path=path)
    try:
        manifest = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"not a skinoct model: unreadable manifest ({exc})", path=path) from None
    if not isinstance(manifest, dict):
        raise ModelError("not a skinoct model: the manifest is not a JSON object", path=path)
    return manifest, raw


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


# --------------------------------------------------------------------------- checks


class _Checker:
    """Collects the path of the field being checked, for messages such as
    ``preprocessing.spacing_um[1] must be …``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, message: str) -> None:
        raise ModelError(f"invalid manifest: {field} {message}", path=self.path)

    def get(self, obj: dict, key: str, field: str, kind, *, required: bool = True, default=None):
        if key not in obj:
            if required:
                self.fail(f"{field}.{key}".lstrip("."), "is missing")
            return default
        value = obj[key]
        if not _is(value, kind):
            self.fail(f"{field}.{key}".lstrip("."), f"must be {_name(kind)}, got {_show(value)}")
        return value

    def number(self, value, field: str, lo: float, hi: float, *, integer: bool = False) -> float:
        kind = int if integer else (int, float)
        if not _is(value, kind) or not math.isfinite(value) or not lo <= value <= hi:
            self.fail(field, f"must be {'an integer' if integer else 'a number'} in [{lo}, {hi}], "
                      f"got {_show(value)}")  # fmt: skip
        return value

    def numbers(self, value, field: str, lo, hi, *, length=None, integer=False, max_len=16):
        if not isinstance(value, list) or not value or len(value) > max_len:
            self.fail(field, f"must be a list of 1–{max_len} numbers, got {_show(value)}")
        if length is not None and len(value) != length:
            self.fail(field, f"must hold {length} values, got {len(value)}")
        return [
            self.number(v, f"{field}[{i}]", lo, hi, integer=integer) for i, v in enumerate(value)
        ]


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def _name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer",
             float: "a number", bool: "true or false"}  # fmt: skip
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _show(value) -> str:
    if isinstance(value, dict) or (isinstance(value, list) and len(value) > 8):
        return type(value).__name__
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _common(c: _Checker, m: dict, model_dir: Path) -> None:
    c.get(m, "task", "", str)
    weights = c.get(m, "weights_file", "", str)
    plain = bool(weights) and "\x00" not in weights and not Path(weights).is_absolute()
    if not plain or (model_dir / weights).resolve().parent != model_dir.resolve():
        c.fail("weights_file", f"must name a file inside the model folder, got {_show(weights)}")
    sha = c.get(m, "weights_sha256", "", str)
    if not _SHA256.fullmatch(sha):
        c.fail("weights_sha256", "must be 64 lower-case hex digits")
    for key in ("training", "scores", "provenance"):
        c.get(m, key, "", dict, required=False)
    for key in ("notice", "skinoct_version"):
        c.get(m, key, "", str, required=False)
    c.get(m, "architecture", "", dict)
    c.get(m, "classes", "", list)
    c.get(m, "preprocessing", "", dict, required=False)


def _layers(c: _Checker, m: dict) -> None:
    from skinoct.io import LABEL_NAMES

    name = c.get(m["architecture"], "name", "architecture", str)
    if name != _LAYERS_ARCHITECTURE:
        raise ModelError(
            f"unknown architecture {_show(name)}; expected {_LAYERS_ARCHITECTURE}", path=c.path
        )
    args = c.get(m["architecture"], "args", "architecture", dict)
    for key, lo, hi in (("spatial_dims", 2, 2), ("in_channels", 1, 1), ("out_channels", 2, 4)):
        c.number(c.get(args, key, "architecture.args", int), f"architecture.args.{key}", lo, hi,
                 integer=True)  # fmt: skip
    channels = c.numbers(args.get("channels"), "architecture.args.channels", 1, _MAX_CHANNELS,
                         integer=True, max_len=8)  # fmt: skip
    if len(channels) < 2:
        c.fail("architecture.args.channels", "must hold at least 2 levels")
    c.numbers(args.get("strides"), "architecture.args.strides", 1, 4, integer=True,
              length=len(channels) - 1)  # fmt: skip
    units = c.get(args, "num_res_units", "architecture.args", int, required=False, default=0)
    c.number(units, "architecture.args.num_res_units", 0, 8, integer=True)
    dropout = c.get(args, "dropout", "architecture.args", (int, float), required=False, default=0)
    c.number(dropout, "architecture.args.dropout", 0.0, 0.9)
    if c.get(args, "norm", "architecture.args", str, required=False, default="batch") not in (
        "batch",
        "instance",
    ):
        c.fail("architecture.args.norm", "must be 'batch' or 'instance'")
    values = m.get("label_values")
    ok = isinstance(values, list) and 2 <= len(values) <= 4 and all(_is(v, int) for v in values)
    if not ok or values != sorted(set(values)) or not set(values) <= set(LABEL_NAMES):
        raise ModelError(
            f"unknown class set {_show(values)} (label_values): expected two or more distinct "
            "labels in increasing order of 0=air, 1=stratum_corneum, 2=epidermis, 3=dermis",
            path=c.path,
        )
    names = [LABEL_NAMES[v] for v in sorted(values)]
    if m["classes"] != names:
        raise ModelError(
            f"unknown class set {_show(m['classes'])}: names must be {names} for labels "
            f"{sorted(values)}",
            path=c.path,
        )
    if args["out_channels"] != len(values):
        raise ModelError(
            f"architecture has {args['out_channels']} outputs for {len(values)} classes",
            path=c.path,
        )
    pre = c.get(m, "preprocessing", "", dict)
    c.numbers(pre.get("spacing_um"), "preprocessing.spacing_um", *SPACING_RANGE_UM, length=2)
    c.get(pre, "normalization", "preprocessing", dict, required=False)
    inference = c.get(m, "inference", "", dict, required=False, default={})
    if "max_window" in inference:
        c.numbers(inference["max_window"], "inference.max_window", 16, 8192, integer=True,
                  length=2)  # fmt: skip


def _matrix(c: _Checker, m: dict) -> None:
    arch = m["architecture"]
    c.get(arch, "name", "architecture", str)
    c.get(arch, "head", "architecture", str, required=False)
    n = c.get(arch, "num_classes", "architecture", int, required=False, default=len(m["classes"]))
    c.number(n, "architecture.num_classes", 2, 16, integer=True)
    classes = c.numbers(m["classes"], "classes", 1, 16, integer=True)
    if len(classes) != n or len(set(classes)) != n:
        c.fail("classes", f"must be {n} distinct grades, got {classes}")
    pre = c.get(m, "preprocessing", "", dict)
    size = c.get(pre, "input_size", "preprocessing", int, required=False, default=224)
    c.number(size, "preprocessing.input_size", 32, 1024, integer=True)
    c.get(pre, "normalization", "preprocessing", str, required=False)
    channels = c.get(pre, "channels", "preprocessing", list, required=False, default=[0, 0, 0])
    if len(channels) != 3:
        c.fail("preprocessing.channels", f"must name 3 channels, got {len(channels)}")


_TASKS: dict[str, Callable[[_Checker, dict], None]] = {"layers": _layers, "matrix": _matrix}


def validate_manifest(manifest: dict[str, Any], *, path: str | Path) -> None:
    """Check a parsed manifest against the schema of its task.

    Parameters
    ----------
    manifest : dict
        The parsed ``model.json``.
    path : str or Path
        The manifest file; named in every error, its folder is the model folder.

    Raises
    ------
    ModelError
        The first field that is missing, of the wrong type or out of range.
    """
    path = Path(path)
    checker = _Checker(path)
    _common(checker, manifest, path.parent)
    task = _TASKS.get(manifest["task"])
    if task is None:
        checker.fail("task", f"must be one of {sorted(_TASKS)}, got {_show(manifest['task'])}")
    task(checker, manifest)
