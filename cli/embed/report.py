"""``embed report``: :func:`embedder.evaluation.report.write_report`: figures and ``report.html``, their paths out."""

from __future__ import annotations

import click

from embedder.config import EvalConfig

from ..errors import notes
from ..options import config_options, data_dir_option, device_option, quiet_option, run_dir_option
from .group import main


@main.command("report")
@run_dir_option("The run to report on.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the figures and report.html [default: report/ in the run folder].",
)
@config_options(EvalConfig, "shots", "episodes", "method", "seed")
@data_dir_option
@device_option
@quiet_option
def report_command(run_dir: str, out: str | None, data_dir: str | None, device: str, quiet: bool, **options) -> None:
    """Evaluate the run as `embed eval` does and draw it: embedding map, confusion matrix, per-class accuracy,
    training curve, hardest mistakes (and open set, when the run has a threshold), in one report.html.

    \b
    Example:
      embed report
      embed report --run-dir runs/mnist --out figures/
    """
    config = EvalConfig(**options)  # checked here, before torch is imported
    from embedder.evaluation.report import write_report
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device

    run = Run.load(run_dir, resolve_device(device))
    notes(quiet)(f"run {run.path} ({run.metadata['dataset']}): {run.trained_on}")
    files = write_report(run, run.load_dataset(data_dir), out, config, progress=not quiet)
    for path in [*files.figures.values(), files.html]:
        click.echo(str(path))
