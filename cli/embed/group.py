"""The ``embed`` command group; each command lives in its own module beside this one."""

from __future__ import annotations

import click

from ..errors import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="tripletshot", prog_name="embed")
def main() -> None:
    """Train a Siamese embedder on some classes; label every class, unseen ones too, by a faiss index.

    The default objective (--loss auto): triplet loss on under 20 classes of strokes with no pool, class contrast
    beside an unlabelled pool, on objects and on 20 classes or more.

    By default the index holds up to 32 k-means centroids of each class's labelled train images (thousands
    a class on MNIST), unseen classes included; `embed train --shots 1` indexes one example each, and `embed eval`
    measures one-shot episodes first.

    \b
    Example:
      embed train --dataset digits --classes 0-4
      embed eval --per-class
      embed enroll --label star star.png && embed predict photo.png
    """
