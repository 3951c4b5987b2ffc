"""``embed train``: options in, :func:`embedder.training.trainer.train` (or ``resume``), a one-line summary out."""

from __future__ import annotations

from pathlib import Path

import click

from embedder.config import TrainConfig
from embedder.data.datasets import DATASETS, FOLDER
from embedder.utils.formatting import plural

from ..errors import notes
from ..options import DatasetChoice, config_option, config_options, data_dir_option, given, quiet_option
from .group import main

HOW = (
    "epochs", "batch_size", "m_per_class", "lr", "weight_decay", "loss", "temperature", "instance_weight", "margin",
    "class_weight", "augmentation", "augment", "descriptor", "embedding_dim", "width",
)  # fmt: skip
INDEX = (
    "shots",
    "centroids",
    "method",
    "index",
    "index_dim",
    "nlist",
    "nprobe",
    "hnsw_m",
    "ef_search",
    "code_size",
    "seed",
    "val_fraction",
    "far",
)


@main.command("train")
@config_option(TrainConfig, "classes")
@config_option(TrainConfig, "val_classes", metavar="K|CLASSES")
@config_option(TrainConfig, "dataset", type=DatasetChoice(list(DATASETS), FOLDER))
@data_dir_option
@config_option(TrainConfig, "unlabelled", metavar="none|rest|PATH")
@config_options(TrainConfig, "unlabelled_weight", "unlabelled_clusters", "test_fraction", "strict")
@config_option(TrainConfig, "run_dir", type=click.Path())
@config_options(TrainConfig, *HOW, *INDEX, "device")
@click.option("--resume", is_flag=True, help="Continue the interrupted training saved in --run-dir, with its options.")
@click.option(
    "--force",
    is_flag=True,
    help="Write into --run-dir even if it holds files that are not a run, an interrupted training, or a run "
    "with enrolled images, which a new training drops (with --dry-run, any trained run).",
)
@config_option(TrainConfig, "dry_run")
@quiet_option
@click.pass_context
def train_command(ctx: click.Context, resume: bool, force: bool, quiet: bool, **options) -> None:
    """Train the embedder on --classes, then index every class of the dataset, unseen ones included.

    The default index holds up to --centroids k-means centroids of all of each class's labelled train
    images (about 5,400 an MNIST digit); --shots N indexes N random images of each instead (--shots 1:
    one-shot). Either way the network never trains on a class outside --classes.

    \b
    Example:
      embed train --dataset digits --classes 0-4 --epochs 10
      embed train --dataset fashion-mnist --classes 'T-shirt/top,Trouser,Pullover'
      embed train --dataset folder:my_symbols --classes all
      embed train --classes 0,1,2 --unlabelled rest   # and MNIST's other train images (chosen by label)
      embed train --dataset folder:glyphs --classes all --val-classes 0   # train on every class
      embed train --classes 0,1,2 --device cuda      # MNIST
      embed train --resume                            # after Ctrl-C
      embed train --classes 0,1,2 > train.log 2>&1    # one line per epoch in the log, no bars
      torchrun --nproc-per-node 2 -m tripletshot.cli.embed train  # DDP: one process per device
    """
    from embedder.data.classes import parse_classes

    options["classes"] = parse_classes(options["classes"])
    if resume:
        from embedder.training.trainer import resume as resume_training

        changes = given(ctx, *(name for name in options if name != "run_dir"))
        result = resume_training(options["run_dir"], progress=not quiet, log=notes(quiet), **changes)
    else:
        config = TrainConfig(**options)  # every option is checked here, before torch is imported
        from embedder.runs.store import check_training_dir
        from embedder.training.trainer import train

        check_training_dir(Path(config.run_dir), force, config.dry_run)  # what it would replace, before any data
        result = train(config, force=force, progress=not quiet, log=notes(quiet))
    if not result.written:  # a rank other than 0 of a torchrun training: rank 0 reports
        return
    from embedder.index.supports import centroids_note

    meta, last = result.metadata, result.metadata["curve"][-1]
    names = ",".join(meta["class_names"][c] for c in meta["classes"])
    trained = f"classes {names}" if names else "no labels"
    index = meta["index"]
    note = centroids_note(index["centroids"], [record["shots"] for record in index["classes"]])
    click.echo(
        f"saved run to {result.run_dir}: {meta['dataset']} {trained}, "
        f"{plural(last['epoch'], 'epoch')} in {meta['train_seconds']:.0f} s, val loss {last['val_loss']:.4f}; "
        f"index ({index['faiss']}) of {len(meta['dataset_classes'])} classes: {index['rule']}{note}"
    )
