"""Study manifests: the CSV that lists a cohort's subjects, read and validated.

Columns ``subject, group, volume`` and optionally ``dej, site, visit``; every row becomes
a :class:`SubjectTask`. :func:`read_manifest` collects every problem before raising one
:class:`ManifestError`, so one run of the command lists them all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from skinoct.errors import InputError

__all__ = [
    "MANIFEST_COLUMNS",
    "OPTIONAL_COLUMNS",
    "Manifest",
    "ManifestError",
    "SubjectTask",
    "read_manifest",
]

#: Required manifest columns.
MANIFEST_COLUMNS = ("subject", "group", "volume")
#: Optional manifest columns: a DEJ (file of depths in µm per (y, x), or one depth in
#: µm), and the site and visit, carried into the tables.
OPTIONAL_COLUMNS = ("dej", "site", "visit")
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +=@-]*$")
#: Longest subject ID (UTF-8 bytes): it names ``subjects/<id>.json``, the folder
#: ``subjects/<id>/`` and their temp files, which must stay under the 255-byte file-name
#: limit of common file systems.
MAX_SUBJECT_BYTES = 128
_META_COLUMNS = ("site", "visit")


class ManifestError(InputError):
    """A manifest with problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str], *, path: str | Path | None = None) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(
            f"{n} problem{'s' if n > 1 else ''} in the manifest: " + "; ".join(problems), path=path
        )


@dataclass(frozen=True)
class SubjectTask:
    """One subject's work order (picklable; sent to the worker)."""

    subject: str
    group: str
    volume: Path
    dej: float | Path | None = None
    meta: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    input_hash: str = ""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: one :class:`SubjectTask` per row, in file order."""

    path: Path | None
    tasks: tuple[SubjectTask, ...]
    columns: tuple[str, ...]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(t.group for t in self.tasks))



def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a study manifest (CSV).

    Columns ``subject, group, volume`` and optionally ``dej, site, visit`` (names are
    case-insensitive). Relative paths are relative to the manifest's folder. Every
    problem is collected before raising, so one run of the command lists them all.

    Raises
    ------
    ManifestError
        Unreadable file, missing or unknown columns, empty cells, subject IDs longer
        than :data:`MAX_SUBJECT_BYTES` or that are
        not usable as file names, duplicate subjects, volume or DEJ files that do not
        exist, DEJ values that are neither a file nor a depth in µm.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError("manifest not found", path=path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError([f"cannot read CSV: {str(exc).splitlines()[0]}"], path=path) from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    problems: list[str] = []
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [c for c in df.columns if c not in MANIFEST_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        problems.append(
            f"unknown column(s): {', '.join(unknown)} (allowed: "
            f"{', '.join(MANIFEST_COLUMNS + OPTIONAL_COLUMNS)})"
        )
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        problems.append(f"column(s) given twice: {', '.join(dup_cols)}")
    if missing or dup_cols:
        raise ManifestError(problems, path=path)
    if df.empty:
        raise ManifestError([*problems, "no subjects (the table has no rows)"], path=path)
    base = path.parent
    tasks, seen = [], {}
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2  # CSV line as a user sees it
        subject = str(row["subject"]).strip()
        group = str(row["group"]).strip()
        volume_text = str(row["volume"]).strip()
        where = f"line {line}" + (f" ({subject})" if subject else "")
        if not subject:
            problems.append(f"line {line}: empty subject")
        elif len(subject.encode()) > MAX_SUBJECT_BYTES:
            problems.append(
                f"line {line} ({subject[:40]}…): subject ID is {len(subject.encode())} bytes long, "
                f"at most {MAX_SUBJECT_BYTES} (it names files)"
            )
        elif not _SUBJECT_RE.match(subject) or subject in (".", ".."):
            problems.append(
                f"{where}: subject ID must start with a letter or digit and hold only letters, "
                "digits, space and ._+=@- (it names files)"
            )
        elif subject in seen:
            problems.append(f"{where}: duplicate subject (first on line {seen[subject]})")
        else:
            seen[subject] = line
        if not group:
            problems.append(f"{where}: empty group")
        volume = None
        if not volume_text:
            problems.append(f"{where}: empty volume")
        else:
            volume = _usable_path(base, volume_text)
            if volume is None:
                problems.append(f"{where}: volume is not a usable path: {volume_text[:80]!r}")
            elif not volume.exists():
                problems.append(f"{where}: volume not found: {volume_text}")
        dej: float | Path | None = None
        dej_text = str(row.get("dej", "")).strip()
        if dej_text:
            try:
                dej = float(dej_text)
            except ValueError:
                dej = _usable_path(base, dej_text)
                if dej is None or not dej.is_file():
                    problems.append(f"{where}: dej is neither a depth in µm nor a file: {dej_text}")
            else:
                if not math.isfinite(dej) or dej < 0:
                    problems.append(f"{where}: dej depth must be ≥ 0 µm, got {dej_text}")
        meta = {c: str(row[c]).strip() for c in _META_COLUMNS if c in row}
        if volume is not None:
            tasks.append(
                SubjectTask(subject=subject, group=group, volume=volume, dej=dej, meta=meta)
            )
    if problems:
        raise ManifestError(problems, path=path)
    return Manifest(path=path, tasks=tuple(tasks), columns=tuple(df.columns))


def _usable_path(base: Path, text: str) -> Path | None:
    """``base / text`` resolved, or None for text no file system takes (NUL, too long)."""
    try:
        path = (base / text).resolve()
        path.exists()  # raises for a name longer than the file system allows
    except (OSError, ValueError):
        return None
    return path
