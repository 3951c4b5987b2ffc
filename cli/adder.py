"""``adder``: recognise a digit in any image with a run's one-shot index, and add a number to it.

adder predict image.png 7              one image, the number last
adder predict a.png b.jpg --number 7   several images, the number as an option
"""

from __future__ import annotations

import json

import click

from .common import Group, data_dir_option, device_option, info


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="tripletshot", prog_name="adder")
def main() -> None:
    """Add a number to the digit recognised in an image, with a linear adder trained by MSE."""


def _train_and_save(run_dir: str, **options):
    """Train the adder (``train_adder``'s defaults unless given) and save it into the run."""
    from adder.model import save_adder, train_adder

    model, report = train_adder(**options)
    save_adder(run_dir, model.cpu(), report)
    return model.cpu(), report


def _describe(report) -> str:
    return (
        f"adder: y = {report.weights[0]:.6f} a + {report.weights[1]:.6f} b {report.bias:+.6f}; "
        f"exact on {100 * report.in_range_exact:.1f}% of pairs in 0..{report.max_value}, "
        f"{100 * report.extrapolation_exact:.1f}% in 0..{report.extrapolation_range} (extrapolation)"
    )


@main.command("train")
@click.option("--run-dir", default="runs/latest", type=click.Path(), help="The embedder run to save the adder in.")
@click.option("--max-value", default=9, type=int, help="Train on all pairs a, b in 0..max-value.")
@click.option("--epochs", default=5, type=int, help="Full-batch L-BFGS steps (20 iterations each).")
@click.option("--lr", default=1.0, type=float, help="L-BFGS step size.")
@click.option("--seed", default=0, type=int)
@device_option("cpu")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def train_command(run_dir: str, max_value: int, epochs: int, lr: float, seed: int, device: str, as_json: bool) -> None:
    """Train the linear adder with MSE and save it into the run directory."""
    from embedder.devices import resolve_device
    from embedder.run import read_metadata

    read_metadata(run_dir)  # the adder lives beside an embedder run
    torch_device = resolve_device(device)
    _, report = _train_and_save(run_dir, max_value=max_value, epochs=epochs, lr=lr, seed=seed, device=torch_device)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else _describe(report))


def _load_run_and_adder(run_dir: str, device: str):
    from adder.model import has_adder, load_adder, save_adder, train_adder
    from embedder.devices import resolve_device
    from embedder.errors import RunError
    from embedder.run import Run

    run = Run.load(run_dir, resolve_device(device))
    if has_adder(run_dir):
        adder, report = load_adder(run_dir)
        return run, adder, report
    adder, report = train_adder()
    try:
        save_adder(run_dir, adder, report)
        info(f"no adder in {run_dir} yet: trained one and saved it. {_describe(report)}")
    except (RunError, OSError) as exc:  # a read-only or busy run still answers; the adder takes a second
        info(f"no adder in {run_dir} yet: trained one for this call but could not save it ({exc}). {_describe(report)}")
    return run, adder, report


@main.command("predict", context_settings={"ignore_unknown_options": True})  # so `... image.png -5` works
@click.argument("args", nargs=-1, required=True, metavar="IMAGE... [NUMBER]")
@click.option("--number", help="The number to add. Without it, the last argument is the number.")
@click.option(
    "--run-dir", default="runs/latest", type=click.Path(), help="The embedder run whose index labels the digit."
)
@device_option("cpu")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict_command(args: tuple[str, ...], number: str | None, run_dir: str, device: str, as_json: bool) -> None:
    """Recognise the digit in each IMAGE (PNG, JPEG, ... any size) and add NUMBER to it."""
    from adder.predict import parse_number

    images = list(args)
    if number is None:
        if len(images) < 2:
            raise click.UsageError("give an image and a number: adder predict image.png 7")
        number = images.pop()
    value = parse_number(number)

    import torch

    from adder.predict import predict_sums
    from embedder.images import load_image

    tensors = torch.stack([load_image(path) for path in images])  # every file checked before any work
    run, adder, report = _load_run_and_adder(run_dir, device)
    if not 0 <= value <= report.max_value:
        info(
            f"warning: {value} is outside the adder's trained range 0..{report.max_value}; "
            f"it is linear, so it extrapolates (exact on {100 * report.extrapolation_exact:.0f}% "
            f"of 0..{report.extrapolation_range})"
        )
    predictions = predict_sums(run, adder, tensors, images, value)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in predictions], indent=2))
    else:
        for p in predictions:
            click.echo(str(p))


@main.command("eval")
@click.option("--run-dir", default="runs/latest", type=click.Path())
@click.option("--seed", default=0, type=int, help="Seed of the random numbers paired with the test images.")
@data_dir_option
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (accuracies as fractions).")
def eval_command(run_dir: str, seed: int, data_dir: str | None, device: str, as_json: bool) -> None:
    """Digit and sum accuracy on the test split, each image paired with a random number 0..9."""
    from adder.predict import evaluate_adder
    from embedder.datasets import load_dataset
    from embedder.run import read_metadata

    data = load_dataset(read_metadata(run_dir)["dataset"], data_dir)
    run, adder, _ = _load_run_and_adder(run_dir, device)
    report = evaluate_adder(run, adder, data.test_images, data.test_labels.numpy(), seed)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"run {report['run']}: {report['queries']} test images, each + a random number 0..9 (seed {seed})")
    click.echo(f"{'class':>5}  {'queries':>7}  {'digit':>6}  {'sum':>6}")
    for row in report["per_class"]:
        click.echo(
            f"{row['class']:>5}  {row['queries']:>7}  "
            f"{100 * row['digit_accuracy']:5.1f}%  {100 * row['sum_accuracy']:5.1f}%"
        )
    verdict = (
        "sum accuracy equals digit accuracy: the adder adds no error of its own"
        if report["adder_errors"] == 0
        else f"the adder got {report['adder_errors']} sums wrong on correctly recognised digits"
    )
    click.echo(
        f"digit accuracy {100 * report['digit_accuracy']:.2f}%, "
        f"sum accuracy {100 * report['sum_accuracy']:.2f}%: {verdict}"
    )
    click.echo(
        "published MNIST+number models, for scale: 97.4% digit / 96.6% sum (CNN with a second head), 98.8% / 98.8%; "
        "this digit comes from a one-shot index, mostly of classes the embedder never saw"
    )


if __name__ == "__main__":
    main()
