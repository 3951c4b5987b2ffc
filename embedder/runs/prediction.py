"""What is this? Each image's class by name, or ``unknown`` from the run's open-set threshold on.

The run's classifier (nearest support, or nearest class mean) decides the class and the distance; the run's
calibration (:mod:`embedder.fewshot.openset`) gives the threshold and the confidence; the index gives the ``k``
nearest supports to show. A run trained before calibration existed has no threshold: it answers the nearest
class for every image, and says so through ``log``, unless a threshold is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from embedder.config import PredictConfig
from embedder.data.labels import UNKNOWN
from embedder.fewshot.openset import limits
from embedder.index.support_index import similarity_to_distance
from embedder.runs.calibration import run_calibration
from embedder.runs.run import Run


@dataclass(frozen=True)
class Neighbour:
    name: str
    label: int
    distance: float


DECIDED_BY = {
    "nn": "its nearest support",
    "prototype": "its class mean",
    "pool": "its nearest support or pool-refined prototype",
}


@dataclass(frozen=True)
class Prediction:
    image: str
    name: str  # the class's name, or "unknown"
    label: int | None  # None when unknown
    nearest: str  # the nearest class, even when the answer is unknown
    distance: float  # to the support (or class mean) that decided
    threshold: float | None  # its nearest class's threshold; None: nothing is rejected
    confidence: float | None  # 1 - the calibrated false-accept rate at this distance; None without calibration
    neighbours: list[Neighbour]  # the k nearest supports
    decided_by: str = "its nearest support"  # what ``distance`` is measured to, in words (the run's method)

    @property
    def known(self) -> bool:
        return self.label is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.known:
            confidence = "" if self.confidence is None else f", confidence {100 * self.confidence:.1f}%"
            head = f"{self.image}: {self.name} ({self.distance:.2f} from {self.decided_by}{confidence})"
        else:
            head = (
                f"{self.image}: unknown (nearest {self.nearest} at {self.distance:.2f}, threshold {self.threshold:.2f})"
            )
        return head + "; nearest supports: " + ", ".join(f"{n.name} {n.distance:.2f}" for n in self.neighbours)


def threshold(run: Run, config: PredictConfig, log: Callable[[str], None] = print) -> float | None:
    """The distance from which ``config`` rejects on this run: given, calibrated, or None (never)."""
    if not config.reject:
        return None
    if config.threshold is not None:
        return config.threshold
    calibrated = run_calibration(run)
    if calibrated is None:
        log(
            f"note: {run.path} has no open-set threshold (trained before tripletshot calibrated one, or with "
            "val_fraction 0), so every image gets its nearest class; give a threshold to reject beyond it"
        )
        return None
    return calibrated.threshold


def class_limits(
    run: Run, config: PredictConfig, limit: float | None, embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each image's threshold as ``config`` decides (inf: none), and as the run's rule has it
    (:func:`openset.limits`; None without a calibration)."""
    calibrated = run_calibration(run)
    rule = None if calibrated is None else limits(calibrated, run.classifier(), embeddings, labels)
    if limit is None or config.threshold is not None or rule is None:
        return np.full(len(labels), np.inf if limit is None else limit), rule
    return rule, rule


def predict(
    run: Run,
    images: torch.Tensor,
    names: list[str],
    config: PredictConfig = PredictConfig(),
    log: Callable[[str], None] = print,
) -> list[Prediction]:
    """Label each uint8 28x28 image (``names`` name them in the answers) by the run's index, or call it unknown."""
    limit, calibrated = threshold(run, config, log), run_calibration(run)
    embeddings = run.embedder.embed(images)
    labels, distances = run.classifier().predict_embeddings(embeddings)  # an empty index fails here
    shown = min(config.k, len(run.index))
    if shown < config.k:
        log(f"note: asked for the {config.k:,} nearest supports, but the run's index holds {shown}: all are shown")
    near_labels, near_similarity = run.index.search(embeddings, shown)
    near_distances = similarity_to_distance(near_similarity)
    thresholds, rule = class_limits(run, config, limit, embeddings, labels)
    confidences = calibrated.exceeded(distances, rule) if calibrated and rule is not None else [None] * len(labels)
    predictions = []
    for i, (label, distance) in enumerate(zip(labels.tolist(), distances.tolist(), strict=True)):
        known = limit is None or distance < thresholds[i]
        neighbours = [
            Neighbour(run.class_name(c), c, d)
            for c, d in zip(near_labels[i].tolist(), near_distances[i].tolist(), strict=True)
        ]
        confidence = None if confidences[i] is None else float(confidences[i])
        predictions.append(
            Prediction(
                names[i],
                run.class_name(label) if known else UNKNOWN,
                label if known else None,
                run.class_name(label),
                distance,
                None if limit is None else float(thresholds[i]),
                confidence,
                neighbours,
                DECIDED_BY.get(run.method, DECIDED_BY["nn"]),
            )  # fmt: skip
        )
    return predictions
