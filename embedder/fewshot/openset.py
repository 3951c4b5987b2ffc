"""Open set: an image whose nearest class is too far away is ``unknown``, at a calibrated false-accept rate.

At the end of training, held-out images of the training classes (the validation split) are scored against
the run's index. Each one's distance to its own class is a *genuine* distance; its distance to the nearest
*other* class is an *impostor* distance: what the nearest class would be if its own were not enrolled. The
threshold is the impostor distance below which a share ``far`` of impostors fall. An image is known when its
distance is below the threshold, and ``unknown`` from the threshold on.

A prediction's confidence is 1 minus the false-accept rate at its distance: the share of held-out impostors
that came no closer. The run keeps the impostor distances at a ladder of rates to look it up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedder.config import check_far
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.index.support_index import SupportIndex, similarity_to_distance

# False-accept rates at which the run keeps the impostor distance: 0.1% steps up to 5%, then 1% steps.
RATES = np.round(np.concatenate([np.linspace(0, 0.05, 51), np.linspace(0.06, 1, 95)]), 4)


def genuine_and_impostor(
    classifier: FewShotClassifier, embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the embeddings whose class is in the classifier's supports: the distance to their own class
    (genuine) and to the nearest other class (impostor). Others are left out."""
    distances = similarity_to_distance(classifier.scores(embeddings))
    own = np.asarray(labels)[:, None] == np.asarray(classifier.classes)[None, :]
    indexed = own.any(axis=1)
    genuine = np.where(own, distances, np.inf).min(axis=1)[indexed]
    impostor = np.where(own, np.inf, distances).min(axis=1)[indexed]
    return genuine, impostor


@dataclass(frozen=True)
class Calibration:
    """The open-set threshold of a run, and what it was measured on."""

    far: float  # the target false-accept rate
    threshold: float  # distances from here on are unknown
    measured_far: float  # share of the calibration impostors below the threshold (at most ``far``)
    true_accept_rate: float  # share of the calibration genuines below the threshold
    genuine: int
    impostors: int
    impostor_distances: list[float]  # the impostor distance at each rate of ``rates``
    rates: list[float]

    def false_accept_rate(self, distance: np.ndarray | float) -> np.ndarray:
        """The share of calibration impostors closer than ``distance``."""
        return np.interp(distance, self.impostor_distances, self.rates)

    def confidence(self, distance: np.ndarray | float) -> np.ndarray:
        """1 minus the false-accept rate at ``distance``: near 1 close to a support, near 0 far from all."""
        return 1.0 - self.false_accept_rate(distance)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**data)


def calibrate(genuine: np.ndarray, impostor: np.ndarray, far: float) -> Calibration:
    """The threshold below which at most a share ``far`` of ``impostor`` distances fall."""
    check_far(far)
    if len(impostor) == 0 or len(genuine) == 0:
        raise ValueError("calibration needs held-out images of at least one indexed class")
    ordered = np.sort(impostor)
    threshold = float(ordered[int(np.floor(far * len(ordered)))])  # accepted: strictly below it
    return Calibration(
        far=far,
        threshold=threshold,
        measured_far=float((impostor < threshold).mean()),
        true_accept_rate=float((genuine < threshold).mean()),
        genuine=len(genuine),
        impostors=len(impostor),
        impostor_distances=np.quantile(ordered, RATES).tolist(),
        rates=RATES.tolist(),
    )


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of telling unknown from known by distance (1: every unknown is farther)."""
    from sklearn.metrics import roc_auc_score

    truth = np.concatenate([np.zeros(len(known)), np.ones(len(unknown))])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))


def _without(index: SupportIndex, label: int) -> SupportIndex:
    kept = index.labels != label
    smaller = SupportIndex(index.dim)
    smaller.add(index.vectors()[kept], index.labels[kept])
    return smaller


def evaluate_open_set(
    index: SupportIndex,
    method: str,
    embeddings: np.ndarray,
    labels: np.ndarray,
    left_out: list[int],
    threshold: float | None,
) -> dict[str, Any]:
    """Leave each class of ``left_out`` out of the index in turn: its queries should be unknown, the others known.

    Per class: AUROC of known-vs-unknown by distance, the share of its queries answered unknown, and the
    accuracy on the known queries (right class *and* below the threshold). Summaries are means over classes.
    """
    rows = []
    for label in left_out:
        classifier = make_classifier(method, index=_without(index, label))
        predicted, distance = classifier.predict_embeddings(embeddings)
        unknown, known = labels == label, np.isin(labels, classifier.classes)
        row: dict[str, Any] = {"class": int(label), "queries": int(unknown.sum()), "known_queries": int(known.sum())}
        row["auroc"] = auroc(distance[known], distance[unknown])
        row["closed_set_accuracy"] = float((predicted[known] == labels[known]).mean())
        if threshold is not None:
            row["unknown_rejected"] = float((distance[unknown] >= threshold).mean())
            right = (predicted[known] == labels[known]) & (distance[known] < threshold)
            row["known_accuracy"] = float(right.mean())
        rows.append(row)
    keys = ["auroc", "closed_set_accuracy", *(["unknown_rejected", "known_accuracy"] if threshold is not None else [])]
    summary = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    return {"threshold": threshold, "left_out": [int(c) for c in left_out], "per_class": rows, "mean": summary}
