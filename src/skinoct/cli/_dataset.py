"""``skinoct layers dataset``: build a training dataset from (corrected) masks."""

from __future__ import annotations

from pathlib import Path

import typer

from skinoct.cli._common import console, parse_spacing
from skinoct.errors import InputError

app = typer.Typer(
    help="Training datasets in the layout 'skinoct layers train' reads.", no_args_is_help=True
)


@app.command("add")
def add(
    image: Path = typer.Argument(
        ..., help="A vertical section, or a 'skinoct layers segment' output folder."
    ),
    mask: Path | None = typer.Argument(
        None, help="Its label mask (0–3); omit for a segment output folder."
    ),
    to: Path = typer.Option(..., "--to", help="Dataset folder (created when new)."),
    subject: str | None = typer.Option(
        None, "--subject", help="Subject id (groups CV folds; default: the section id)."
    ),
    pair_id: str | None = typer.Option(None, "--id", help="Pair id (default: the image stem)."),
    spacing: str | None = typer.Option(
        None, "--spacing", help="Pixel size DZ DX in µm; overrides both files' metadata."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a pair with this id."),
) -> int:
    """Add an image and its corrected mask to a training dataset (images/, masks/, index.csv).

    Shapes, labels and spacing are checked; an existing pair is never replaced without
    --overwrite.
    """
    from skinoct.datasets import add_segmentation_outputs, add_training_pair

    if mask is None:
        if not image.is_dir():
            raise InputError("give MASK, or a 'skinoct layers segment' output folder", path=image)
        if pair_id is not None or spacing is not None:
            raise InputError("--id and --spacing apply to one IMAGE MASK pair, not a folder")
        records = add_segmentation_outputs(to, image, subject=subject, overwrite=overwrite)
    else:
        records = [
            add_training_pair(
                to, image, mask, id=pair_id, subject=subject,
                spacing_um=parse_spacing(spacing, ndim=2), overwrite=overwrite,
            )
        ]  # fmt: skip
    for r in records:
        console.print(f"added {r.id} (subject {r.subject}) to {to}", highlight=False)
    return 0
