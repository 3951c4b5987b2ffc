"""``embed export``: a run's embedder as ONNX, with its faiss index and labels beside it."""

from __future__ import annotations

import click

from ..options import run_dir_option
from .group import main


@main.command("export")
@run_dir_option("The run to export.")
@click.option("--format", "format", type=click.Choice(["onnx"]), default="onnx", help="The model's file format.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="model.onnx",
    help="The model file; the index (.faiss) and labels (.labels.json) are written beside it.",
)
def export_command(run_dir: str, format: str, out: str) -> None:
    """Write the run's embedder (uint8 images in, unit vectors out) and its support index, for serving
    without tripletshot.

    \b
    Example:
      embed export --format onnx --out model.onnx    # also model.faiss, model.labels.json
    """
    from embedder.runs.export import export_run
    from embedder.runs.run import Run

    for path in export_run(Run.load(run_dir), out, format):
        click.echo(f"wrote {path}")
