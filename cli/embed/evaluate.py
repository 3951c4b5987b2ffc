"""``embed eval``: :func:`embedder.evaluation.episodes.evaluate_run` on a run, printed as a table or JSON."""

from __future__ import annotations

import click

from embedder.config import EvalConfig
from embedder.utils.formatting import percent

from ..errors import notes
from ..options import (
    config_options,
    data_dir_option,
    device_option,
    json_option,
    json_text,
    quiet_option,
    run_dir_option,
)
from .group import main


def _interval(e: dict) -> str:
    return percent(e["mean"], e["ci95"])


def format_report(report: dict, per_class: bool) -> str:
    """The human-readable form of an :func:`~embedder.evaluation.episodes.evaluate_run` report.

    The one-shot (K-shot) episodes come first: they measure what the network does for a class from K examples.
    The saved index's accuracy follows, captioned with what that index holds.
    """
    from embedder.evaluation.episodes import describe_sources

    summary, episodes = report["summary"], report["episodes"]
    lines = [f"run {report['run']} ({report['dataset']}): {report['trained_on']}"]
    if report.get("pending_training"):
        lines.append(f"note: {report['pending_training']}")
    shots = episodes["shots"]
    lines.append(
        f"{shots}-shot episodes ({episodes['count']} random draws of {shots} labelled image{'s' if shots > 1 else ''} "
        f"a class, 95% CI), {episodes['method']}: " + _episode_parts(episodes)
    )
    if "without_pool" in episodes:
        lines.append(f"  the same episodes without the pool (nn): {_episode_parts(episodes['without_pool'])}")
        lines.append(f"  its pool: {episodes['pool']}")
    if per_class:
        width = max(5, *(len(row["name"]) for row in report["per_class"]))
        lines += ["", f"{'class':>{width}}  {'':6}  {'queries':>7}  {'accuracy':>8}"]
        for row in report["per_class"]:
            lines.append(
                f"{row['name']:>{width}}  {'seen' if row['seen'] else 'unseen':6}  "
                f"{row['queries']:>7}  {percent(row['accuracy']):>8}"
            )
        lines.append("")
    lines.append(
        f"saved index ({summary['method']}): seen {percent(summary['seen'])}, unseen {percent(summary['unseen'])}, "
        f"all {percent(summary['all'])} (macro: mean of per-class accuracies)"
    )
    lines.append(f"  its index: {describe_sources(summary['index_sources'])}")
    lines += _format_accuracy_calculator(report["accuracy_calculator"])
    if "open_set" in report:
        lines += _format_open_set(report["open_set"])
    return "\n".join(lines)


def _episode_parts(episodes: dict) -> str:
    parts = [f"{episodes['all']['ways']}-way {_interval(episodes['all'])}"]
    if "unseen" in episodes:
        parts.append(f"unseen {episodes['unseen']['ways']}-way {_interval(episodes['unseen'])}")
    return ", ".join(parts)


def _format_accuracy_calculator(groups: dict) -> list[str]:
    lines = ["", "pytorch-metric-learning AccuracyCalculator (test queries, train split as reference):"]
    lines.append(f"{'classes':>8}  {'P@1':>6}  {'MAP@R':>6}  {'NMI':>6}  {'AMI':>6}")
    for name, m in groups.items():
        values = (m["precision_at_1"], m["mean_average_precision_at_r"], m["NMI"], m["AMI"])
        lines.append(f"{name:>8}  " + "  ".join(f"{v:6.3f}" for v in values))
    return lines


def _format_open_set(report: dict) -> list[str]:
    mean = report["mean"]
    lines = [
        "",
        f"open set (each of {len(report['left_out'])} unseen classes left out of the index in turn, its test "
        f"queries unknown): AUROC known vs unknown {mean['auroc']:.3f}",
    ]
    if report["threshold"] is None:
        lines.append("the run has no open-set threshold (trained before calibration): `embed calibrate` fits one")
    else:
        lines.append(f"the run states: {report['statement']}")
        lines.append(
            f"met here, at the run's rule: unknown queries rejected {percent(mean['unknown_rejected'])} (these "
            f"classes were calibration classes), known queries right and accepted {percent(mean['known_accuracy'])} "
            f"(right without rejection: {percent(mean['closed_set_accuracy'])})"
        )
    return lines


@main.command("eval")
@run_dir_option("The run to evaluate.")
@click.option("--per-class", is_flag=True, help="Show accuracy for every class, seen and unseen.")
@config_options(EvalConfig, "shots", "episodes", "method", "seed", "open_set")
@data_dir_option
@device_option
@json_option
@quiet_option
def eval_command(
    run_dir: str, per_class: bool, data_dir: str | None, device: str, as_json: bool, quiet: bool, **options
) -> None:
    """Per-class accuracy on the test split, and N-way K-shot means over random support draws.

    \b
    Example:
      embed eval --per-class
      embed eval --shots 5 --json | python -m json.tool
      embed eval --open-set
    """
    config = EvalConfig(**options)  # checked here, before torch is imported
    from embedder.evaluation.episodes import evaluate_run
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device

    run = Run.load(run_dir, resolve_device(device))
    dataset = run.load_dataset(data_dir)
    for warning in dataset.warnings:
        notes(quiet)(f"warning: {warning}")
    report = evaluate_run(run, dataset, config, progress=not quiet)
    click.echo(json_text(report) if as_json else format_report(report, per_class))
