"""``embed pool``: give a run an unlabelled pool for inference, show it, or take it away
(:func:`embedder.runs.pool.set_pool`)."""

from __future__ import annotations

import click

from ..errors import info
from ..options import data_dir_option, device_option, run_dir_option
from .group import main


@main.command("pool")
@click.argument("source", required=False)
@run_dir_option("The run whose pool to set or show.")
@data_dir_option
@device_option
def pool_command(source: str | None, run_dir: str, data_dir: str | None, device: str) -> None:
    """Set the run's unlabelled pool to SOURCE (rest, a folder of images, or none); show it without SOURCE.

    A class named from few images is then decided by its prototype refined over the pool (seeded soft k-means,
    the run's trained classes standing fixed), if a check on the run's own held-out images finds that it does
    not lose to the nearest support; the run says what was decided and why. rest: the train split's images of
    every class the run neither trained nor validated on (their labels choose the images; nothing else reads them).

    \b
    Example:
      embed pool rest
      embed pool my_unlabelled_photos/
      embed pool none
    """
    if source is None:
        from embedder.runs.pool import describe_pool
        from embedder.runs.store import RunDir

        click.echo(describe_pool(RunDir(run_dir).metadata().get("pool")))
        return
    from embedder.runs.pool import describe_pool, set_pool
    from embedder.training.devices import resolve_device

    entry = set_pool(run_dir, source, data_dir, resolve_device(device), log=info)
    click.echo(describe_pool(entry) if entry else f"{run_dir}: no pool; classes are decided by their supports")
