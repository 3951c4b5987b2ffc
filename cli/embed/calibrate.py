"""``embed calibrate``: fit a run's open-set threshold again (:func:`embedder.runs.calibration.recalibrate`)."""

from __future__ import annotations

import click

from embedder.config import TrainConfig

from ..errors import info
from ..options import config_option, data_dir_option, device_option, run_dir_option
from .group import main


@main.command("calibrate")
@config_option(TrainConfig, "far")
@run_dir_option("The run to calibrate.")
@data_dir_option
@device_option
@click.option(
    "--impostors",
    type=click.Path(),
    help="A folder of images of no class the run knows (each sub-folder a class of its own): impostors beside "
    "the run's, each left out of the fit in turn to check the rate.",
)
def calibrate_command(far: float, run_dir: str, data_dir: str | None, device: str, impostors: str | None) -> None:
    """Fit the run's open-set threshold for --far on its held-out images, against its index as it is now.

    Training does this at its end; run it for another --far, after enrolling classes, or on a run trained
    before tripletshot calibrated one.

    \b
    Example:
      embed calibrate --far 0.05
      embed calibrate --impostors not_mine/   # pictures of what the run should call unknown
    """
    from embedder.config import check_far

    check_far(far)  # before torch is imported
    from embedder.runs.calibration import recalibrate
    from embedder.training.devices import resolve_device

    result = recalibrate(run_dir, far, data_dir, resolve_device(device), log=info, impostors=impostors)
    click.echo(f"{run_dir}: {result.statement()}; {result.known_statement()}")
