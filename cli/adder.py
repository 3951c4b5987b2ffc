"""``adder``: recognise a digit in any image with a run's index, and add a number to it.

adder predict image.png 7              one image, the number last
adder predict a.png b.jpg --number 7   several images, the number as an option
"""

from __future__ import annotations

from collections.abc import Callable

import click

from tripletshot.adder.config import AdderConfig

from .errors import Group, notes
from .options import (
    config_options,
    data_dir_option,
    device_option,
    json_option,
    json_text,
    quiet_option,
    run_dir_option,
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="tripletshot", prog_name="adder")
def main() -> None:
    """Add a number to the digit recognised in an image, with a linear adder trained by MSE.

    \b
    Example:
      adder predict photo.png 7
      adder eval
    """


def _describe(report) -> str:
    sign = "-" if report.bias < 0 else "+"
    return (
        f"adder: y = {report.weights[0]:.6f} a + {report.weights[1]:.6f} b {sign} {abs(report.bias):.6f}; "
        f"exact on {100 * report.in_range_exact:.1f}% of pairs in 0..{report.max_value}, "
        f"{100 * report.extrapolation_exact:.1f}% in 0..{report.extrapolation_range} (extrapolation)"
    )


@main.command("train")
@run_dir_option("The embedder run to save the adder in.")
@config_options(AdderConfig, "max_value", "epochs", "lr", "seed")
@device_option
@json_option
@quiet_option
def train_command(run_dir: str, device: str, as_json: bool, quiet: bool, **options) -> None:
    """Train the linear adder with MSE and save it into the run directory.

    \b
    Example:
      adder train --max-value 9
    """
    from tripletshot.adder.pipeline import adder_config, save_adder

    config = adder_config(**options)
    from embedder.runs.run import read_metadata
    from embedder.training.devices import resolve_device
    from tripletshot.adder.training import train_adder

    read_metadata(run_dir)  # the adder lives beside an embedder run
    model, report = train_adder(config, resolve_device(device))
    save_adder(run_dir, model.cpu(), report)
    click.echo(json_text(report.as_dict()) if as_json else _describe(report))


def _load_run_and_adder(run_dir: str, device: str, say: Callable[[str], None]):
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device
    from tripletshot.adder.pipeline import adder_for

    run = Run.load(run_dir, resolve_device(device))
    adder, report, saved = adder_for(run)
    if not saved:
        say(f"{run_dir} has no adder (`adder train` saves one): using one trained now. {_describe(report)}")
    return run, adder, report


@main.command("predict", context_settings={"ignore_unknown_options": True})  # so `... image.png -5` works
@click.argument("args", nargs=-1, required=True, metavar="IMAGE... [NUMBER]")
@click.option("--number", help="The number to add. Without it, the last argument is the number.")
@click.option(
    "--reject/--no-reject", default=True, help="Refuse an image the run calls unknown; without it, the nearest digit."
)
@run_dir_option("The embedder run whose index labels the digit.")
@device_option
@json_option
@quiet_option
@click.option("--verbose", "-v", is_flag=True, help="Also say which adder answers, and when a number is extrapolated.")
def predict_command(
    args: tuple[str, ...],
    number: str | None,
    reject: bool,
    run_dir: str,
    device: str,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Recognise the digit in each IMAGE (PNG, JPEG, ... any size) and add NUMBER to it.

    An image the run calls unknown (beyond its open-set threshold) is refused, exit 1.

    \b
    Example:
      adder predict photo.jpg 7
      adder predict a.png b.jpg --number 7 --json
      adder predict scribble.png 7 --no-reject     # the nearest digit, however far
    """
    from tripletshot.adder.pipeline import parse_number

    images = list(args)
    if number is None:
        if len(images) < 2:
            raise click.UsageError("give an image and a number: adder predict image.png 7")
        number = images.pop()
    value = parse_number(number)

    import torch

    from embedder.data.images import load_image
    from tripletshot.adder.pipeline import predict_sums

    tensors = torch.stack([load_image(path) for path in images])  # every file checked before any work
    say = notes(quiet or not verbose)  # a prediction prints its answer; how it was reached is for --verbose
    run, adder, report = _load_run_and_adder(run_dir, device, say)
    if not 0 <= value <= report.max_value:
        say(
            f"note: {value} is outside the adder's trained range 0..{report.max_value}; it is linear, so it "
            f"extrapolates (exact on {100 * report.extrapolation_exact:.0f}% of 0..{report.extrapolation_range})"
        )
    predictions = predict_sums(run, adder, tensors, images, value, reject=reject, log=notes(quiet))
    if as_json:
        click.echo(json_text([p.as_dict() for p in predictions]))
    else:
        for p in predictions:
            click.echo(str(p))


@main.command("eval")
@run_dir_option("The embedder run whose index labels the digits.")
@click.option("--seed", default=0, type=int, help="Seed of the random numbers paired with the test images.")
@data_dir_option
@device_option
@json_option
@quiet_option
def eval_command(run_dir: str, seed: int, data_dir: str | None, device: str, as_json: bool, quiet: bool) -> None:
    """Digit and sum accuracy on the test split, each image paired with a random number 0..9.

    \b
    Example:
      adder eval --json
    """
    from embedder.evaluation.episodes import index_sources
    from tripletshot.adder.pipeline import evaluate_adder

    run, adder, _ = _load_run_and_adder(run_dir, device, notes(quiet))
    data = run.load_dataset(data_dir)
    report = evaluate_adder(run, adder, data.test_images, data.test_labels.numpy(), seed, progress=not quiet)
    report["index"] = index_sources(run, data)  # what the digit accuracy stands on
    click.echo(json_text(report) if as_json else _format_eval(report, seed))


def _format_eval(report: dict, seed: int) -> str:
    from embedder.evaluation.episodes import describe_sources

    lines = [
        f"run {report['run']}: {report['queries']} test images, each + a random number 0..9 (seed {seed})",
        f"{'class':>5}  {'queries':>7}  {'digit':>6}  {'sum':>6}",
    ]
    for row in report["per_class"]:
        lines.append(
            f"{row['class']:>5}  {row['queries']:>7}  "
            f"{100 * row['digit_accuracy']:5.1f}%  {100 * row['sum_accuracy']:5.1f}%"
        )
    verdict = (
        "sum accuracy equals digit accuracy: the adder adds no error of its own"
        if report["adder_errors"] == 0
        else f"the adder got {report['adder_errors']} sums wrong on correctly recognised digits"
    )
    lines.append(
        f"digit accuracy {100 * report['digit_accuracy']:.2f}%, sum accuracy {100 * report['sum_accuracy']:.2f}% "
        f"(of all test images): {verdict}"
    )
    # No figures of models trained on all ten digits beside these: that comparison is not like for like.
    lines.append(f"the digit comes from the run's index (`embed index`): {describe_sources(report['index'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
