"""Open set: an image whose nearest class is too far away is ``unknown``, at a calibrated false-accept rate.

At the end of training, held-out images of the training classes (the validation split) are scored against
the run's index. Each one's distance to its own class is a *genuine* distance; its distance to the nearest
*other* class is an *impostor* distance: what the nearest class would be if its own were not enrolled. The
threshold is the impostor distance below which a share ``far`` of impostors fall. An image is known when its
distance is strictly below the threshold, and ``unknown`` from the threshold on.

Both distances are the ones prediction computes: the classifier's :meth:`predict_embeddings`, restricted to
the image's own class (genuine) or to every other class (impostor), which for the nearest-support method is
the run's faiss search with an ``IDSelector`` (its PCA, quantiser and probes included). So the false-accept
rate calibrated here is the one ``embed predict`` meets on an image of a class that is not enrolled.

A prediction's confidence is 1 minus the false-accept rate at its distance: the share of held-out impostors
that came no closer. The run keeps the impostor distances at a ladder of rates to look it up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedder.config import check_far
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.index.support_index import SupportIndex

# False-accept rates at which the run keeps the impostor distance: 0.1% steps up to 5%, then 1% steps.
RATES = np.round(np.concatenate([np.linspace(0, 0.05, 51), np.linspace(0.06, 1, 95)]), 4)


def genuine_and_impostor(
    classifier: FewShotClassifier, embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the embeddings of :func:`scored` rows: the distance prediction gives among their own class only
    (genuine) and among the other classes only (impostor). Others are left out."""
    labels, classes = np.asarray(labels), classifier.classes
    kept = scored(classifier, labels)
    genuine, impostor = np.empty(len(labels)), np.empty(len(labels))
    for c in np.unique(labels[kept]).tolist():
        rows = labels == c
        genuine[rows] = classifier.predict_embeddings(embeddings[rows], classes=[c])[1]
        impostor[rows] = classifier.predict_embeddings(embeddings[rows], classes=[o for o in classes if o != c])[1]
    return genuine[kept], impostor[kept]


def scored(classifier: FewShotClassifier, labels: np.ndarray) -> np.ndarray:
    """Which of these labels :func:`genuine_and_impostor` scores: a class in the supports, beside another."""
    classes = classifier.classes
    return np.isin(labels, classes) if len(classes) > 1 else np.zeros(len(labels), bool)


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
    A class is left out by searching the run's index without it (a faiss selector), not by copying the index.
    """
    rows = []
    classifier = make_classifier(method, index=index)
    for label in left_out:
        others = [c for c in classifier.classes if c != label]
        predicted, distance = classifier.predict_embeddings(embeddings, classes=others)
        unknown, known = labels == label, np.isin(labels, others)
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
