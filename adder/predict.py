"""Recognise a digit with a run's embedder and faiss index, then add a number with the linear adder."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from embedder.errors import UsageError
from embedder.run import Run

from .model import LinearAdder

_INTEGER = re.compile(r"[+-]?\d+")
MAX_EXACT = 2**53


def parse_number(text: str) -> int:
    """A decimal integer, any size or sign; anything else (``seven``, ``3.5``, ``nan``, ``1e400``) is a usage error."""
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        raise UsageError(f"the number to add must be an integer, got {text!r}")
    value = int(text)
    if abs(value) > MAX_EXACT:
        raise UsageError(f"the number to add must be within ±2**53 (float64 adds exactly up to there), got {text}")
    return value


def add(adder: LinearAdder, digits: np.ndarray | list[int], numbers: np.ndarray | list[int]) -> np.ndarray:
    """The adder's rounded sums of ``digits[i] + numbers[i]``."""
    pairs = torch.tensor(np.stack([np.asarray(digits), np.asarray(numbers)], axis=1), dtype=torch.float64)
    with torch.inference_mode():
        return adder(pairs).round().long().numpy()


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


def predict_sums(run: Run, adder: LinearAdder, images: torch.Tensor, names: list[str], number: int) -> list[Prediction]:
    """Label each uint8 28x28 image with the run's one-shot index, then add ``number`` to it."""
    digits, distances = run.classifier().predict(images)
    sums = add(adder, digits, [number] * len(digits))
    rows = zip(names, digits, distances, sums, strict=True)
    return [Prediction(name, int(d), float(dist), number, int(s)) for name, d, dist, s in rows]


def evaluate_adder(
    run: Run, adder: LinearAdder, images: torch.Tensor, labels: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """Every test image paired with a seeded random number 0..9: digit, sum and per-class accuracy."""
    numbers = np.random.default_rng(seed).integers(0, 10, size=len(labels))
    digits, _ = run.classifier().predict(images)
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
        "adder_errors": int((digit_ok & ~sum_ok).sum()),  # right digit, wrong sum: the adder's own errors
        "per_class": per_class,
    }
