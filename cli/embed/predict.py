"""``embed predict``: what is in each image, or ``unknown`` (:func:`embedder.runs.prediction.predict`)."""

from __future__ import annotations

import click

from embedder.config import PredictConfig, field_table

from ..errors import info
from ..options import config_options, device_option, json_option, json_text, run_dir_option
from .group import main


@main.command("predict")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@config_options(PredictConfig, "k", "threshold")
@click.option("--reject/--no-reject", "reject", default=True, help=field_table(PredictConfig)["reject"]["help"])
@run_dir_option("The run whose index labels the images.")
@device_option
@json_option
def predict_command(images: tuple[str, ...], run_dir: str, device: str, as_json: bool, **options) -> None:
    """Name the class of each IMAGE (any format, any size), or answer unknown beyond the run's threshold.

    \b
    Example:
      embed predict photo.jpg
      embed predict a.png b.png --k 3 --json
      embed predict photo.jpg --no-reject          # always the nearest class
    """
    config = PredictConfig(**options)  # checked before torch is imported
    import torch

    from embedder.runs.prediction import predict
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device

    readable, failed = read_images(images)  # every file read before any model loads
    if readable:
        names = list(readable)
        predictions = predict(Run.load(run_dir, resolve_device(device)), torch.stack(list(readable.values())), names,
                              config, log=info)  # fmt: skip
        if as_json:
            click.echo(json_text([p.as_dict() for p in predictions]))
        else:
            for p in predictions:
                click.echo(str(p))
    for message in failed:  # each unreadable image on its own line, after the answers for the others
        info(f"Error: {message}")
    if failed:
        click.get_current_context().exit(1)


def read_images(paths: tuple[str, ...]) -> tuple[dict, list[str]]:
    """``{path: uint8 image}`` for the files that can be read, in order, and one message per file that cannot."""
    from embedder.data.images import load_image
    from embedder.errors import ImageError

    readable, failed = {}, []
    for path in paths:
        try:
            readable[path] = load_image(path)
        except ImageError as exc:
            failed.append(str(exc))
    return readable, failed
