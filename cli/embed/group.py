"""The ``embed`` command group; each command lives in its own module beside this one."""

from __future__ import annotations

import click

from ..errors import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="tripletshot", prog_name="embed")
def main() -> None:
    """Train a Siamese triplet embedder on some classes; label unseen ones from one example each.

    \b
    Example:
      embed train --dataset digits --classes 0-4
      embed eval --per-class
      embed enroll --label star star.png && embed predict photo.png
    """
