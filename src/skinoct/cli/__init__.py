"""Command-line interface: ``skinoct``.

Thin over the library: parsing and printing here, the work in the subpackages.
Heavy imports (torch, MONAI) happen inside commands so ``skinoct --help`` is fast.
"""

from __future__ import annotations

import sys

import typer

from skinoct._version import __version__
from skinoct.cli import _common, layers, matrix
from skinoct.cli._info import info, inspect

app = typer.Typer(
    name="skinoct",
    help="Quantitative LC-OCT skin imaging: segmentation, morphometry, dermal matrix grading.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"skinoct {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    _common.STATE.debug = debug
    _common.STATE.quiet = quiet


app.command("info")(info)
app.command("inspect")(inspect)

# Sub-command groups register here once they work.
from skinoct.cli.study import analyze as _analyze  # noqa: E402
from skinoct.cli.study import demo as _demo  # noqa: E402
from skinoct.cli.study import study_app  # noqa: E402

app.add_typer(study_app, name="study")
app.command("analyze")(_analyze)
app.command("demo")(_demo)
app.add_typer(layers.app, name="layers")
app.add_typer(matrix.app, name="matrix")
from skinoct.cli import phantom as _phantom  # noqa: E402

app.add_typer(_phantom.app, name="phantom")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skinoct`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    return _common.run_app(app, args)


__all__ = ["app", "main"]
