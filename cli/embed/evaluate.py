"""``embed eval``: :func:`embedder.evaluation.evaluate_run` on a run, printed as a table or JSON."""

from __future__ import annotations

import json

import click

from embedder.config import EvalConfig

from ..errors import info
from ..options import config_options, data_dir_option, device_option, json_option, run_dir_option
from .group import main


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(report: dict, per_class: bool) -> str:
    """The human-readable form of an :func:`~embedder.evaluation.evaluate_run` report."""
    lines = [f"run {report['run']} ({report['dataset']}, trained on {','.join(report['trained_class_names'])})"]
    summary, episodes = report["summary"], report["episodes"]
    if per_class:
        width = max(5, *(len(row["name"]) for row in report["per_class"]))
        lines += ["", f"{'class':>{width}}  {'':6}  {'queries':>7}  {'accuracy':>8}"]
        for row in report["per_class"]:
            lines.append(
                f"{row['name']:>{width}}  {'seen' if row['seen'] else 'unseen':6}  "
                f"{row['queries']:>7}  {_pct(row['accuracy']):>8}"
            )
        lines.append("")
    lines.append(
        f"saved index ({summary['index_shots']}-shot, {summary['method']}): seen {_pct(summary['seen'])}, "
        f"unseen {_pct(summary['unseen'])}, all {_pct(summary['all'])} (macro: mean of per-class accuracies)"
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
@run_dir_option("The run to evaluate.")
@click.option("--per-class", is_flag=True, help="Show accuracy for every class, seen and unseen.")
@config_options(EvalConfig, "shots", "episodes", "method", "seed")
@data_dir_option
@device_option
@json_option
def eval_command(run_dir: str, per_class: bool, data_dir: str | None, device: str, as_json: bool, **options) -> None:
    """Per-class accuracy on the test split, and N-way K-shot means over random support draws.

    \b
    Example:
      embed eval --per-class
      embed eval --shots 5 --json | python -m json.tool
    """
    config = EvalConfig(**options)  # checked here, before torch is imported
    from embedder.devices import resolve_device
    from embedder.evaluation import evaluate_run
    from embedder.run import Run

    run = Run.load(run_dir, resolve_device(device))
    dataset = run.load_dataset(data_dir)
    for warning in dataset.warnings:
        info(f"warning: {warning}")
    report = evaluate_run(run, dataset, config)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report, per_class))
