"""Evaluation: per-class accuracy of a run's own index, and episodic N-way K-shot accuracy.

Episodes draw K supports per class from one pool (the train split) and label every query of those
N classes from another (the test split), many times over; the mean comes with a 95% interval.
Queries always come from the test split and supports from the train split, so they never overlap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .config import EvalConfig
from .data import Dataset
from .fewshot import make_classifier
from .index import SupportIndex
from .run import Run
from .sampling import sample_supports


@dataclass(frozen=True)
class EpisodeResult:
    ways: int
    shots: int
    count: int
    mean: float
    ci95: float

    def as_dict(self) -> dict:
        return asdict(self)


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
    shots: int = EvalConfig.shots,
    episodes: int = EvalConfig.episodes,
    seed: int = EvalConfig.seed,
    method: str = "nn",
) -> EpisodeResult:
    """Mean accuracy over ``episodes`` random ``len(classes)``-way ``shots``-shot support draws.

    Every query of the chosen classes is labelled in every episode; the draws are seeded.
    """
    EvalConfig(shots=shots, episodes=episodes, seed=seed, method=method)  # checks them
    rng = np.random.default_rng(seed)
    in_episode = np.isin(query_labels, classes)
    queries, truth = query_embeddings[in_episode], query_labels[in_episode]
    classifier = make_classifier(method, index=SupportIndex(support_embeddings.shape[1]))
    accuracies = np.empty(episodes)
    for e in range(episodes):
        chosen = sample_supports(support_labels, classes, shots, rng)
        classifier.set_support_embeddings(support_embeddings[chosen], support_labels[chosen])
        predicted, _ = classifier.predict_embeddings(queries)
        accuracies[e] = float((predicted == truth).mean())
    mean, ci95 = mean_ci95(accuracies)
    return EpisodeResult(len(classes), shots, episodes, mean, ci95)


def per_class_accuracy(
    predicted: np.ndarray, truth: np.ndarray, classes: list[int], seen: list[int], names: list[str]
) -> list[dict[str, Any]]:
    """One row per class: its label and name, whether training saw it, its test queries and their accuracy."""
    rows = []
    for c in classes:
        mask = truth == c
        rows.append(
            {
                "class": int(c),
                "name": names[c],
                "seen": c in seen,
                "queries": int(mask.sum()),
                "accuracy": float((predicted[mask] == c).mean()) if mask.any() else float("nan"),
            }
        )
    return rows


def _macro_mean(rows: list[dict[str, Any]]) -> float | None:
    values = [r["accuracy"] for r in rows if r["queries"]]
    return float(np.mean(values)) if values else None


def _episodes_report(
    support: tuple[np.ndarray, np.ndarray], query: tuple[np.ndarray, np.ndarray], classes: list[int], unseen: list[int],
    shots: int, episodes: int, seed: int, method: str,
) -> dict[str, Any]:  # fmt: skip
    common = dict(shots=shots, episodes=episodes, seed=seed, method=method)
    report: dict[str, Any] = {"shots": shots, "count": episodes, "method": method}
    groups = {"all": classes, "unseen": unseen} if len(unseen) >= 2 else {"all": classes}
    for name, group in groups.items():
        result = evaluate_episodes(*support, *query, group, **common)
        report[name] = {"ways": result.ways, "mean": result.mean, "ci95": result.ci95}
    return report


def evaluate_run(run: Run, dataset: Dataset, config: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """The report ``embed eval --json`` prints: per-class and summary accuracy of the run's saved
    index, and episodic means with 95% intervals over ``episodes`` random support draws.

    Summary accuracies are macro means: the mean of the per-class accuracies, each class counting once.
    """
    shots, episodes, seed = config.shots, config.episodes, config.seed
    method = config.method or run.metadata["index"]["method"]
    seen = run.trained_classes
    test_labels, train_labels = dataset.test_labels.numpy(), dataset.train_labels.numpy()
    query_embeddings = run.embedder.embed(dataset.test_images)
    predicted, _ = run.classifier(method).predict_embeddings(query_embeddings)
    per_class = per_class_accuracy(predicted, test_labels, dataset.classes, seen, dataset.class_names)
    unseen = [c for c in dataset.classes if c not in seen]
    summary = {
        "seen": _macro_mean([r for r in per_class if r["seen"]]),
        "unseen": _macro_mean([r for r in per_class if not r["seen"]]),
        "all": _macro_mean(per_class),
        "averaging": "macro: the mean of per-class accuracies",
        "index_shots": run.metadata["index"]["shots"],
        "method": method,
    }
    support = (run.embedder.embed(dataset.train_images), train_labels)
    episode_report = _episodes_report(
        support, (query_embeddings, test_labels), dataset.classes, unseen, shots, episodes, seed, method
    )
    return {
        "run": str(run.path),
        "dataset": dataset.name,
        "trained_classes": seen,
        "trained_class_names": [dataset.class_names[c] for c in seen],
        "per_class": per_class,
        "summary": summary,
        "episodes": episode_report,
    }
