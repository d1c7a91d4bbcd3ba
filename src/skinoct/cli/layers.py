"""``skinoct layers``: skin-layer segmentation and morphometry."""

from __future__ import annotations

import typer

from skinoct.cli._measure import measure

app = typer.Typer(help="Skin-layer segmentation and morphometry.", no_args_is_help=True)
app.command("measure")(measure)
