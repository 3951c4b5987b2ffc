"""From an image file to a sum: a run's index names the digit, the linear adder adds the number.

This is the one place where the adder meets the embedder: it reads images and runs, keeps the adder
in a run's manifest (``adder train``), and never writes when it only predicts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from embedder.config import PredictConfig
from embedder.errors import ConfigError, RunError, UnknownImageError, quote
from embedder.runs.prediction import Prediction as ClassPrediction
from embedder.runs.prediction import predict
from embedder.runs.run import Run
from embedder.runs.store import RunDir, tensors_to_bytes

from .config import AdderConfig, AdderOptionError
from .model import LinearAdder
from .training import AdderReport, train_adder

_INTEGER = re.compile(r"[+-]?\d+")
# A digit (0..9) plus a number stays within float64's exact integers (|x| <= 2**53) up to here.
MAX_NUMBER = 2**53 - 9


def parse_number(text: str) -> int:
    """A decimal integer with ``|n| <= MAX_NUMBER``; anything else (``seven``, ``3.5``, ``1e400``) is a ConfigError."""
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        raise ConfigError("number", f"the {{number}} to add must be an integer, got {quote(text)}")
    value = int(text)
    if abs(value) > MAX_NUMBER:
        raise ConfigError(
            "number", f"the {{number}} to add must be within ±(2**53 - 9), where float64 adds exactly, got {text}"
        )
    return value


def adder_config(**options: Any) -> AdderConfig:
    """An :class:`AdderConfig`, its option errors raised as :class:`ConfigError` like the embedder's."""
    try:
        return AdderConfig(**options)
    except AdderOptionError as exc:
        raise ConfigError(exc.param, exc.template) from None


def add(adder: LinearAdder, digits: np.ndarray | list[int], numbers: np.ndarray | list[int]) -> np.ndarray:
    """The adder's rounded sums of ``digits[i] + numbers[i]``, in float64."""
    pairs = torch.tensor(np.stack([np.asarray(digits), np.asarray(numbers)], axis=1), dtype=torch.float64)
    with torch.inference_mode():
        return adder(pairs).round().long().numpy()


# --- the adder in a run folder ---


def save_adder(run_dir: str | os.PathLike, model: LinearAdder, report: AdderReport) -> None:
    """Commit the adder into the run's manifest (atomic, checksummed, under the run's lock)."""
    RunDir(run_dir).commit({"adder": tensors_to_bytes({"model": model.state_dict(), "report": report.as_dict()})})


def load_adder(run_dir: str | os.PathLike, manifest: dict[str, Any] | None = None) -> tuple[LinearAdder, AdderReport]:
    """The adder saved in a run; ``manifest``, if given, is the run.json already read (not parsed again)."""
    saved = RunDir(run_dir).read_tensors("adder", manifest)
    try:
        report = AdderReport(**saved["report"])
        model = LinearAdder().double()
        model.load_state_dict(saved["model"])
    except (KeyError, TypeError, RuntimeError):
        raise RunError(f"the adder file in {run_dir} is not a tripletshot adder") from None
    return model.eval(), report


def adder_for(run: Run) -> tuple[LinearAdder, AdderReport, bool]:
    """The run's saved adder, else one trained now in memory (well under a second); and whether it was saved.

    Nothing is written: saving an adder into a run is ``adder train``'s job.
    """
    if run.has_file("adder"):
        return (*load_adder(run.path, run.manifest), True)
    return (*train_adder(), False)


# --- predictions and their evaluation ---


@dataclass(frozen=True)
class Prediction:
    image: str
    digit: int
    distance: float
    number: int
    sum: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.image}: digit {self.digit} (nearest support {self.distance:.2f} away) + {self.number} = {self.sum}"
        )


def _digit(answer: ClassPrediction) -> int:
    """The number an answer of :func:`embedder.runs.prediction.predict` names; refused if unknown or not a number."""
    if not answer.known:
        raise UnknownImageError(
            f"{answer.image}: no digit this run knows (nearest {answer.distance:.2f}, threshold {answer.threshold:.2f})"
        )
    if not _INTEGER.fullmatch(answer.name):
        raise UnknownImageError(f"{answer.image}: the run knows it as {quote(answer.name)}, which is not a number")
    return int(answer.name)


def predict_sums(
    run: Run,
    adder: LinearAdder,
    images: torch.Tensor,
    names: list[str],
    number: int,
    reject: bool = True,
    log: Callable[[str], None] = print,
) -> list[Prediction]:
    """Label each uint8 28x28 image as :func:`embedder.runs.prediction.predict` does, then add ``number`` to it.

    An image the run calls unknown is refused with :class:`UnknownImageError`, unless ``reject`` is False.
    """
    answers = predict(run, images, names, PredictConfig(k=1, reject=reject), log=log)
    digits = [_digit(answer) for answer in answers]
    sums = add(adder, digits, [number] * len(digits))
    rows = zip(answers, digits, sums, strict=True)
    return [Prediction(a.image, d, a.distance, number, int(s)) for a, d, s in rows]


def evaluate_adder(
    run: Run, adder: LinearAdder, images: torch.Tensor, labels: np.ndarray, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """Every test image paired with a seeded random number 0..9: digit, sum and per-class accuracy.

    The overall accuracies are per image (micro); the per-class rows give each class's own. ``progress``: a bar
    while the images are embedded, where stderr is a terminal.
    """
    numbers = np.random.default_rng(seed).integers(0, 10, size=len(labels))
    digits, _ = run.classifier().predict_embeddings(run.embedder.embed(images, progress))
    sums = add(adder, digits, numbers)
    digit_ok, sum_ok = digits == labels, sums == labels + numbers
    per_class = [
        {
            "class": int(c),
            "queries": int((labels == c).sum()),
            "digit_accuracy": float(digit_ok[labels == c].mean()),
            "sum_accuracy": float(sum_ok[labels == c].mean()),
        }
        for c in np.unique(labels)
    ]
    return {
        "run": str(run.path),
        "queries": len(labels),
        "digit_accuracy": float(digit_ok.mean()),
        "sum_accuracy": float(sum_ok.mean()),
        "averaging": "micro: the share of all test images",
        "adder_errors": int((digit_ok & ~sum_ok).sum()),  # right digit, wrong sum: the adder's own errors
        "per_class": per_class,
    }
