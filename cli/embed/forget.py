"""``embed forget``: remove a class from a run's index (:func:`embedder.runs.enrolment.forget`)."""

from __future__ import annotations

import click

from ..options import run_dir_option
from .enroll import threshold_note
from .group import main


@main.command("forget")
@click.argument("name")
@run_dir_option("The run whose index forgets the class.")
def forget_command(name: str, run_dir: str) -> None:
    """Remove the class NAME and all its shots from the run's index. The weights are not touched.

    \b
    Example:
      embed forget star
      embed forget 8 && embed enroll --label 8 better_eight.png
    """
    from embedder.runs.enrolment import forget

    gone = forget(run_dir, name)
    click.echo(f"forgot {gone.name} (label {gone.label}, {gone.shots} shot(s), {gone.origin}) from {run_dir}")
    threshold_note(run_dir)
