"""``embed train``: options in, :func:`embedder.training.train` (or ``resume``), a one-line summary out."""

from __future__ import annotations

import click

from embedder.config import TrainConfig
from embedder.data import DATASETS

from ..errors import info
from ..options import config_option, config_options, data_dir_option, given
from .group import main

HOW = ("epochs", "batch_size", "m_per_class", "lr", "weight_decay", "margin", "class_weight", "embedding_dim", "width")
INDEX = (
    "shots",
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
)


@main.command("train")
@config_option(TrainConfig, "classes")
@config_option(TrainConfig, "dataset", type=click.Choice(sorted(DATASETS)))
@data_dir_option
@config_option(TrainConfig, "run_dir", type=click.Path())
@config_options(TrainConfig, *HOW, *INDEX, "device")
@click.option("--resume", is_flag=True, help="Continue the interrupted training saved in --run-dir, with its options.")
@click.option("--force", is_flag=True, help="Write into --run-dir even if it holds files that are not a run.")
@config_option(TrainConfig, "dry_run")
@click.pass_context
def train_command(ctx: click.Context, resume: bool, force: bool, **options) -> None:
    """Train the embedder on --classes and index --shots examples of every class.

    \b
    Example:
      embed train --dataset digits --classes 0-4 --epochs 10
      embed train --classes 0,1,2 --device cuda      # MNIST
      embed train --resume                            # after Ctrl-C
      torchrun --nproc-per-node 2 -m cli.embed train  # DDP: one process per device
    """
    from embedder.classes import parse_classes

    options["classes"] = parse_classes(options["classes"])
    if resume:
        from embedder.training import resume as resume_training

        changes = given(ctx, *(name for name in options if name != "run_dir"))
        result = resume_training(options["run_dir"], log=info, **changes)
    else:
        config = TrainConfig(**options)  # every option is checked here, before torch is imported
        from embedder.training import train

        result = train(config, force=force, log=info)
    if not result.written:  # a rank other than 0 of a torchrun training: rank 0 reports
        return
    meta, last = result.metadata, result.metadata["curve"][-1]
    click.echo(
        f"saved run to {result.run_dir}: {meta['dataset']} classes {','.join(map(str, meta['classes']))}, "
        f"{last['epoch']} epochs in {meta['train_seconds']:.0f} s, val loss {last['val_loss']:.4f}; "
        f"index ({meta['index']['faiss']}) holds {meta['index']['shots']} shot(s) of each of "
        f"{len(meta['dataset_classes'])} classes"
    )
