"""Episodic N-way K-shot evaluation: many random support draws, mean accuracy with a 95% interval.

Supports come from one pool (the train split), queries from another (the test split). An
episode draws K supports per class, labels every query of those N classes by faiss search,
and scores the fraction right.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import UsageError
from .index import SupportIndex


@dataclass(frozen=True)
class EpisodeResult:
    ways: int
    shots: int
    count: int
    mean: float
    ci95: float

    def as_dict(self) -> dict:
        return asdict(self)


def sample_supports(
    labels: np.ndarray, classes: list[int], shots: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Indices into ``labels``: ``shots`` distinct examples of each class, none of them in ``exclude``."""
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    chosen = []
    for c in classes:
        pool = np.flatnonzero((labels == c) & allowed)
        if len(pool) < shots:
            raise UsageError(f"class {c} has {len(pool)} support candidates, fewer than --shots {shots}")
        chosen.append(rng.choice(pool, size=shots, replace=False))
    return np.concatenate(chosen)


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


def evaluate_episodes(
    support_embeddings: np.ndarray,
    support_labels: np.ndarray,
    query_embeddings: np.ndarray,
    query_labels: np.ndarray,
    classes: list[int],
    shots: int = 1,
    episodes: int = 200,
    seed: int = 0,
    method: str = "nn",
) -> EpisodeResult:
    """Mean accuracy over ``episodes`` random ``len(classes)``-way ``shots``-shot support draws.

    Every query of the chosen classes is labelled in every episode; the draws are seeded.
    """
    if episodes < 1:
        raise UsageError("--episodes must be at least 1")
    if shots < 1:
        raise UsageError("--shots must be at least 1")
    rng = np.random.default_rng(seed)
    in_episode = np.isin(query_labels, classes)
    queries, truth = query_embeddings[in_episode], query_labels[in_episode]
    accuracies = np.empty(episodes)
    for e in range(episodes):
        chosen = sample_supports(support_labels, classes, shots, rng)
        index = SupportIndex(support_embeddings.shape[1])
        index.add(support_embeddings[chosen], support_labels[chosen])
        predicted, _ = index.classify(queries, method)
        accuracies[e] = float((predicted == truth).mean())
    mean, ci95 = mean_ci95(accuracies)
    return EpisodeResult(len(classes), shots, episodes, mean, ci95)
