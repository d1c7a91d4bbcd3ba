"""Shared CLI machinery: error reporting, exit codes, batches, spacing parsing."""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from skinoct.errors import InputError, SkinoctError

__all__ = [
    "EXIT_ALL_FAILED",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "STATE",
    "console",
    "err_console",
    "fail",
    "parse_spacing",
    "prefer_passive_openmp",
    "progress",
    "run_app",
    "run_batch",
    "show_warning",
]

EXIT_OK = 0
EXIT_SOME_FAILED = 1  #: some inputs of a batch failed, the others were processed
EXIT_ALL_FAILED = 2  #: bad command line, bad single input, or every input failed

T = TypeVar("T")

try:  # typer >= 0.22 vendors its own copy of click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click_exceptions


@dataclass
class _State:
    debug: bool = False
    quiet: bool = False


STATE = _State()
console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, *, path: str | Path | None = None) -> None:
    """Raise an :class:`InputError` (exit code 2, one line)."""
    raise InputError(message, path=path)


def report_error(exc: BaseException) -> None:
    """Print one line for ``exc`` on stderr (the traceback too with ``--debug``)."""
    if STATE.debug:
        traceback.print_exception(exc, file=sys.stderr)
    from rich.markup import escape

    # Escaped: messages quote user text such as "[z]" that rich would eat as markup.
    text = escape(str(exc).strip().replace("\n", " ") or type(exc).__name__)
    if isinstance(exc, SkinoctError):
        err_console.print(f"[red]error:[/red] {text}", markup=True, highlight=False)
    else:
        err_console.print(
            f"[red]error:[/red] {type(exc).__name__}: {text}"
            + ("" if STATE.debug else " (run with --debug for details)"),
            highlight=False,
        )


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning on stderr in one line, ``warning: FILE: message``, through rich.

    skinoct's warnings name the file they concern at the start of their message; the
    Python source line that raised them means nothing to a user and is left out. Going
    through the rich console keeps a running progress bar intact (the line is printed
    above it). With ``--debug`` the full warning is shown: category, source file and
    line.
    """
    if STATE.debug:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    else:
        text = "warning: " + " ".join(str(message).split())
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def run_app(app: typer.Typer, args: list[str]) -> int:
    """Run the Typer ``app`` on ``args``; turn every failure into an exit code.

    Warnings raised meanwhile are printed by :func:`show_warning`.
    """
    STATE.debug = "--debug" in args
    args = _join_spacing_values(args)
    command = typer.main.get_command(app)
    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        return _run_command(command, args)
    finally:
        warnings.showwarning = previous


def _run_command(command, args: list[str]) -> int:
    try:
        result = command.main(args=args, prog_name="skinoct", standalone_mode=False)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except _click_exceptions.ClickException as exc:
        exc.show()
        return EXIT_ALL_FAILED
    except (SkinoctError, OSError) as exc:
        report_error(exc)
        return EXIT_ALL_FAILED
    except Exception as exc:  # a bug: still one line unless --debug
        report_error(exc)
        return EXIT_ALL_FAILED
    return result if isinstance(result, int) else EXIT_OK


def _join_spacing_values(args: list[str]) -> list[str]:
    """Let ``--spacing 0.5 1.2`` stand for ``--spacing 0.5,1.2`` (click takes one value)."""
    out, i = [], 0
    while i < len(args):
        out.append(args[i])
        if args[i] == "--spacing":
            values = []
            while i + 1 < len(args) and _is_number(args[i + 1]) and len(values) < 3:
                values.append(args[i + 1])
                i += 1
            if values:
                out.append(",".join(values))
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text.split(",")[0])
    except ValueError:
        return False
    return True


def prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose).

    On a busy or small CPU, torch's spinning OpenMP threads starve onnxruntime and
    each other between the many short operations of inference: a 512 x 1200 section
    took 0.3-0.6 s instead of 0.1 s on 2 shared cores (BENCHMARKS.md). Effective only
    before torch is first imported (the commands import it lazily); worker processes
    inherit it.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def parse_spacing(text: str | None, *, ndim: int | None = None) -> tuple[float, ...] | None:
    """Parse ``"0.5,1.2"`` (or one value for isotropic) into a spacing tuple in µm."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in str(text).replace(" ", ",").split(",") if v)
    except ValueError:
        raise InputError(f"--spacing must be numbers in µm, got {text!r}") from None
    if not values or any(not v > 0 or v == float("inf") for v in values):
        raise InputError(f"--spacing must be positive numbers in µm, got {text!r}")
    if ndim is not None and len(values) not in (1, ndim):
        raise InputError(f"--spacing needs 1 or {ndim} values, got {len(values)}: {text!r}")
    return values


def progress(items: Sequence[T] | Iterable[T], *, description: str, total: int | None = None):
    """Iterate with a rich progress bar on stderr (silent with ``--quiet`` or no TTY)."""
    from rich.progress import track

    if STATE.quiet or not err_console.is_terminal:
        return iter(items)
    return track(items, description=description, total=total, console=err_console, transient=False)


def run_batch(
    items: Sequence[T],
    work: Callable[[T], object],
    *,
    description: str,
) -> int:
    """Apply ``work`` to every item; report each failure in one line and go on.

    Returns
    -------
    int
        0 when all succeeded, 1 when some failed, 2 when all failed.
    """
    failed = 0
    for item in progress(items, description=description, total=len(items)):
        try:
            work(item)
        except (SkinoctError, OSError, ValueError) as exc:
            failed += 1
            report_error(exc)
            if STATE.debug:
                raise
    if failed and len(items) > 1:
        err_console.print(f"{failed} of {len(items)} failed", highlight=False)
    if failed == 0:
        return EXIT_OK
    return EXIT_ALL_FAILED if failed == len(items) else EXIT_SOME_FAILED
