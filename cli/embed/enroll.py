"""``embed enroll``: add images to a run's index under a class name (:func:`embedder.runs.enrolment.enrol`)."""

from __future__ import annotations

import click

from ..errors import info
from ..options import device_option, json_option, json_text, run_dir_option
from .group import main


def _images_by_label(label: str | None, images: tuple[str, ...], folder: str | None) -> dict:
    """``{name: uint8 images}`` from ``--label`` and its files, or from ``--folder``'s sub-folders."""
    if (label is None) == (folder is None):
        raise click.UsageError("give --label NAME and IMAGE files, or --folder DIR")
    if folder is not None:
        if images:
            raise click.UsageError("--folder takes no IMAGE arguments: its sub-folders are the classes")
        from embedder.runs.enrolment import read_class_folders

        classes, skipped = read_class_folders(folder)
        if skipped:
            first = ", ".join(f"{path} ({why.removeprefix(str(path) + ': ')})" for path, why in skipped[:3])
            if not classes:  # enrolling nothing is an error, and the run is left as it is (not even locked)
                from embedder.errors import ImageError

                raise ImageError(
                    f"nothing to enrol from {folder}: its {len(skipped)} image(s) cannot be read ({first})"
                )
            info(f"warning: skipped {len(skipped)} unreadable or blank image(s): {first}")
        return classes
    if not images:
        raise click.UsageError("give the IMAGE files to enrol under --label")
    from embedder.data.labels import check_label

    check_label(label)  # before torch is imported
    import torch

    from embedder.data.images import load_image

    return {label: torch.stack([load_image(path) for path in images])}  # every file read before any model loads


@main.command("enroll")
@click.argument("images", nargs=-1, metavar="[IMAGE]...")
@click.option("--label", help="The class to enrol the images as: a new name, or more shots of a class the run knows.")
@click.option(
    "--folder", type=click.Path(), metavar="DIR", help="Enrol each sub-folder of DIR as a class named by its path."
)
@click.option(
    "--pool-image",
    "pool_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Enrol the run's pool image ID (as `embed report` shows its unclaimed clusters) under --label.",
)
@run_dir_option("The run whose index the images join.")
@device_option
@json_option
def enroll_command(
    images: tuple[str, ...], label: str | None, folder: str | None, pool_ids: tuple[int, ...], run_dir: str,
    device: str, as_json: bool,
) -> None:  # fmt: skip
    """Add IMAGEs to the run's index as class --label, without retraining: a new class or more shots of one.

    \b
    Example:
      embed enroll --label 7 seven.png                  # more shots of a class the run knows
      embed enroll --label star star1.png star2.png     # a new class
      embed enroll --folder my_symbols/                 # each sub-folder a class
      embed enroll --label zigzag --pool-image 412      # a cluster of the pool nobody named
    """
    classes = _from_pool(label, images, pool_ids, run_dir) if pool_ids else _images_by_label(label, images, folder)
    from embedder.runs.enrolment import enrol
    from embedder.training.devices import resolve_device

    enrolled = enrol(run_dir, classes, resolve_device(device))
    if as_json:
        click.echo(json_text([c.as_dict() for c in enrolled]))
        return
    for c, (name, added) in zip(enrolled, classes.items(), strict=True):
        kind = "a new class" if c.origin == "enrolled" and c.shots == len(added) else f"now {c.shots} shots"
        click.echo(f"enrolled {len(added)} image(s) as {name} (label {c.label}, {kind}) in {run_dir}")
    threshold_note(run_dir)


def _from_pool(label: str | None, images: tuple[str, ...], ids: tuple[int, ...], run_dir: str) -> dict:
    """``{label: the pool's images ids}``."""
    if label is None or images:
        raise click.UsageError("--pool-image takes --label NAME and no IMAGE files")
    from embedder.data.labels import check_label

    check_label(label)
    from embedder.runs.run import Run
    from embedder.runs.unclaimed import pool_images

    return {label: pool_images(Run.load(run_dir), list(ids))}


def threshold_note(run_dir: str) -> None:
    """After a change to the index: a note, on stderr, that the run's threshold predates it."""
    from embedder.runs.calibration import threshold_note
    from embedder.runs.store import RunDir

    note = threshold_note(RunDir(run_dir).metadata())
    if note:
        info(f"note: {note}")
