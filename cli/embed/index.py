"""``embed index``: the classes in a run's index (:func:`embedder.runs.enrolment.indexed_classes`)."""

from __future__ import annotations

import click

from ..options import json_option, json_text, run_dir_option
from .group import main


@main.command("index")
@run_dir_option("The run whose index to list.")
@json_option
def index_command(run_dir: str, as_json: bool) -> None:
    """List the classes in the run's index: name, shots, built in training or enrolled, and when.

    \b
    Example:
      embed index
      embed index --run-dir runs/mnist --json
    """
    from embedder.runs.calibration import threshold_note
    from embedder.runs.enrolment import indexed_classes
    from embedder.runs.run import Run

    run = Run.load(run_dir)
    classes = indexed_classes(run)
    if as_json:
        click.echo(json_text([c.as_dict() for c in classes]))
        return
    width = max([len(c.name) for c in classes] + [5])
    click.echo(f"{'label':>5}  {'name':<{width}}  {'vectors':>7}  {'origin':<8}  {'added':<25}  updated")
    for c in classes:
        click.echo(
            f"{c.label:>5}  {c.name:<{width}}  {c.shots:>7}  {c.origin:<8}  {c.added or '-':<25}  {c.updated or '-'}"
        )
    click.echo(f"{len(classes)} classes, {sum(c.shots for c in classes)} vectors in {run_dir}")
    note = threshold_note(run.metadata)
    if note:
        click.echo(note[0].upper() + note[1:])
