"""``embed predict``: what is in each image, or ``unknown`` (:func:`embedder.runs.prediction.predict`)."""

from __future__ import annotations

import json

import click

from embedder.config import PredictConfig, field_table

from ..errors import info
from ..options import config_options, device_option, json_option, run_dir_option
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

    from embedder.data.images import load_image
    from embedder.runs.prediction import predict
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device

    tensors = torch.stack([load_image(path) for path in images])  # every file read before any model loads
    predictions = predict(Run.load(run_dir, resolve_device(device)), tensors, list(images), config, log=info)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in predictions], indent=2))
    else:
        for p in predictions:
            click.echo(str(p))
