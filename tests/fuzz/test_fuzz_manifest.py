"""Fuzzing the study manifest parser (issue 15, point 9).

Manifests are built from hostile cells (formula prefixes, quotes, separators, control
and non-ASCII characters, long and path-like ids, NUL bytes), from shuffled or foreign
column names, and from byte mutations of a valid manifest. ``read_manifest`` must end
in a :class:`~skinoct.study.Manifest` or an :class:`~skinoct.errors.InputError` naming
the manifest, without hanging. See ``_fuzzing.py`` for the longer run.
"""

from __future__ import annotations

import csv
import io

import pandas  # noqa: F401  (imported before tracing starts: imports are slow under tracemalloc)
from _fuzzing import TALLY, fuzz_settings, guarded
from hypothesis import given
from hypothesis import strategies as st

from skinoct.errors import InputError
from skinoct.study import read_manifest

_VALID = (
    "subject,group,volume,dej,site,visit\ns01,young,vol.npy,80,face,1\ns02,old,vol.npy,,arm,2\n"
)
_COLUMNS = ["subject", "group", "volume", "dej", "site", "visit", "Subject", " GROUP ", "x", ""]
_TRICKY = ["=1+1", "+A1", "-2", "@SUM(A1)", "NA", "nan", "null", "", " ", "..", ".", "a/b",
           "../vol.npy", "vol.npy", "/dev/null", "vol.npy\0", "é", "\u202e", "x" * 300,
           "1e999", "-5", "inf", "80", "\"", "a,b", "line\nbreak"]  # fmt: skip

cells = st.sampled_from(_TRICKY) | st.text(max_size=40)
groups = st.sampled_from(["young", "old", "NA", "nan", "null", "=cmd|' /C calc'!A0", "@x", "-1"])


@st.composite
def manifests(draw) -> bytes:
    kind = draw(st.sampled_from(["near_valid", "table", "bytes", "random"]))
    if kind == "near_valid":  # valid structure, hostile values: exercises the row checks
        n = draw(st.integers(1, 5))
        subjects = draw(st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._+=@-]{0,30}",
                                               fullmatch=True) | cells,
                                 min_size=n, max_size=n))  # fmt: skip
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["subject", "group", "volume", "dej", "site", "visit"])
        for subject in subjects:
            writer.writerow([subject, draw(groups), draw(st.just("vol.npy") | cells),
                             draw(st.sampled_from(["", "80", "0", "vol.npy"]) | cells),
                             draw(cells), draw(cells)])  # fmt: skip
        return buffer.getvalue().encode()
    if kind == "table":
        columns = draw(st.lists(st.sampled_from(_COLUMNS), min_size=0, max_size=7))
        if draw(st.booleans()):
            columns = ["subject", "group", "volume", *columns]
        rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns)),
                             max_size=6))  # fmt: skip
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        writer.writerows(rows)
        encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
        return buffer.getvalue().encode(encoding, errors="replace")
    if kind == "bytes":
        data = bytearray(_VALID.encode())
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.sampled_from(["set", "insert", "cut"]))
            at = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "set" and data:
                data[at] = draw(st.integers(0, 255))
            elif op == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            else:
                data = data[:at]
        return bytes(data)
    return draw(st.binary(max_size=1024))


@fuzz_settings(ci_examples=80)
@given(payload=manifests())
def test_manifest_parser_ends_in_a_manifest_or_a_named_input_error(tmp_path_factory, payload):
    folder = tmp_path_factory.mktemp("manifest", numbered=True)
    (folder / "vol.npy").write_bytes(b"")  # exists: the parser only checks that it does
    path = folder / "manifest.csv"
    path.write_bytes(payload)
    with guarded(f"read_manifest({payload[:60]!r})"):
        try:
            manifest = read_manifest(path)
        except InputError as exc:
            assert "manifest.csv" in str(exc), f"error names no file: {exc}"
            outcome = "input_error"
        else:
            assert manifest.tasks, "a manifest without subjects was accepted"
            outcome = "result"
    TALLY["manifest: tried"] += 1
    TALLY[f"manifest: {outcome}"] += 1
