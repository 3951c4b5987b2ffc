"""``embed``: train a triplet embedder and evaluate its one-shot extension to unseen classes.

Heavy imports (torch, faiss, pytorch-metric-learning) happen inside the commands, so ``--help``
and usage errors answer at once.
"""

from __future__ import annotations

import json

import click

from .common import Group, data_dir_option, device_option, info


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="tripletshot", prog_name="embed")
def main() -> None:
    """Train a Siamese triplet embedder on some classes; label unseen ones from one example each."""


@main.command("train")
@click.option("--classes", default="0,1,2", help="Classes to train on: 0,1,2 or a range like 0-4.")
@click.option("--dataset", default="mnist", help="mnist, or digits (scikit-learn's bundled 8x8 digits, no download).")
@data_dir_option
@click.option("--run-dir", default="runs/latest", type=click.Path(), help="Where the run is saved.")
@click.option("--epochs", default=30, type=int)
@click.option(
    "--batch-size", type=int, help="Images per batch, a multiple of --m-per-class [default: m x min(classes, 8)]."
)
@click.option("--m-per-class", default=64, type=int, help="Images of each class in a batch.")
@click.option("--lr", default=2e-3, type=float, help="Peak learning rate (one-cycle schedule, AdamW).")
@click.option("--margin", default=0.2, type=float, help="Triplet margin.")
@click.option("--class-weight", default=0.3, type=float, help="Weight of class triplets next to instance triplets.")
@click.option("--embedding-dim", default=1024, type=int, help="Embedding size: a 4x4 grid of dim/16 channels.")
@click.option("--seed", default=0, type=int)
@click.option("--shots", default=1, type=int, help="Support examples per class put into the run's index.")
@click.option(
    "--method", default="nn", type=click.Choice(["nn", "prototype"]), help="Nearest support, or nearest class mean."
)
@device_option()
@click.option("--resume", is_flag=True, help="Continue the interrupted training saved in --run-dir.")
@click.option("--force", is_flag=True, help="Write into --run-dir even if it holds files that are not a run.")
@click.option("--dry-run", is_flag=True, help="One epoch of two steps: check that everything runs.")
def train_command(classes: str, dataset: str, data_dir: str | None, run_dir: str, **options) -> None:
    """Train the embedder on --classes and index --shots examples of every class."""
    from embedder.classes import check_classes, parse_classes
    from embedder.config import TrainConfig

    resume, force = options.pop("resume"), options.pop("force")
    if resume:  # the checkpoint holds the options; train() reads them
        config = TrainConfig(run_dir=run_dir, data_dir=data_dir, device=options["device"])
    else:  # options first, before torch is imported: a typo answers at once
        config = TrainConfig(
            classes=parse_classes(classes), dataset=dataset, data_dir=data_dir, run_dir=run_dir, **options
        )
        config.check()

    from embedder.datasets import load_dataset
    from embedder.devices import resolve_device
    from embedder.train import train

    resolve_device(options["device"])  # fail on a bad device before loading data
    if resume:
        result = train(config, resume=True, log=info)
    else:
        data = load_dataset(dataset, data_dir)
        check_classes(config.classes, data.classes)
        result = train(config, force=force, log=info, dataset=data)
    meta, last = result.metadata, result.metadata["curve"][-1]
    click.echo(
        f"saved run to {result.run_dir}: {meta['dataset']} classes {','.join(map(str, meta['classes']))}, "
        f"{last['epoch']} epochs in {meta['train_seconds']:.0f} s, val loss {last['val_loss']:.4f}; "
        f"index holds {meta['index']['shots']} shot(s) of each of {len(meta['dataset_classes'])} classes"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(report: dict, per_class: bool) -> str:
    lines = [f"run {report['run']} ({report['dataset']}, trained on {','.join(map(str, report['trained_classes']))})"]
    summary, episodes = report["summary"], report["episodes"]
    if per_class:
        lines += ["", f"{'class':>5}  {'':6}  {'queries':>7}  {'accuracy':>8}"]
        for row in report["per_class"]:
            lines.append(
                f"{row['class']:>5}  {'seen' if row['seen'] else 'unseen':6}  "
                f"{row['queries']:>7}  {_pct(row['accuracy']):>8}"
            )
        lines.append("")
    lines.append(
        f"saved index ({summary['index_shots']}-shot, {summary['method']}): seen {_pct(summary['seen'])}, "
        f"unseen {_pct(summary['unseen'])}, all {_pct(summary['all'])} (mean of per-class accuracy)"
    )
    parts = [
        f"{episodes['all']['ways']}-way {100 * episodes['all']['mean']:.1f}% ± {100 * episodes['all']['ci95']:.1f}"
    ]
    if "unseen" in episodes:
        e = episodes["unseen"]
        parts.append(f"unseen {e['ways']}-way {100 * e['mean']:.1f}% ± {100 * e['ci95']:.1f}")
    lines.append(
        f"episodes ({episodes['count']} random {episodes['shots']}-shot support draws, 95% CI): " + ", ".join(parts)
    )
    return "\n".join(lines)


@main.command("eval")
@click.option("--run-dir", default="runs/latest", type=click.Path(), help="The run to evaluate.")
@click.option("--per-class", is_flag=True, help="Show accuracy for every class, seen and unseen.")
@click.option("--shots", default=1, type=int, help="K of the episodic N-way K-shot evaluation.")
@click.option("--episodes", default=200, type=int, help="Random support draws.")
@click.option("--method", type=click.Choice(["nn", "prototype"]), help="[default: the run's]")
@click.option("--seed", default=0, type=int, help="Seed of the support draws.")
@data_dir_option
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (accuracies as fractions).")
def eval_command(
    run_dir: str,
    per_class: bool,
    shots: int,
    episodes: int,
    method: str | None,
    seed: int,
    data_dir: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Per-class accuracy on the test split, and N-way K-shot means over random support draws."""
    from embedder.errors import UsageError

    if shots < 1:
        raise UsageError("--shots must be at least 1")
    if episodes < 1:
        raise UsageError("--episodes must be at least 1")
    from embedder.datasets import load_dataset
    from embedder.devices import resolve_device
    from embedder.evaluate import evaluate_run
    from embedder.run import Run, read_metadata

    torch_device = resolve_device(device)
    meta = read_metadata(run_dir)
    data = load_dataset(meta["dataset"], data_dir)
    run = Run.load(run_dir, torch_device)
    report = evaluate_run(run, data, shots=shots, episodes=episodes, seed=seed, method=method)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report, per_class))


if __name__ == "__main__":
    main()
