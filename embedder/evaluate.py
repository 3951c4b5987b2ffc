"""``embed eval``: per-class accuracy of a run's own index, and episodic N-way K-shot accuracy.

Queries always come from the test split and supports from the train split, so they never overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .datasets import Dataset
from .episodes import evaluate_episodes
from .run import Run


def per_class_accuracy(
    predicted: np.ndarray, truth: np.ndarray, classes: list[int], seen: list[int]
) -> list[dict[str, Any]]:
    rows = []
    for c in classes:
        mask = truth == c
        rows.append(
            {
                "class": int(c),
                "seen": c in seen,
                "queries": int(mask.sum()),
                "accuracy": float((predicted[mask] == c).mean()) if mask.any() else float("nan"),
            }
        )
    return rows


def _macro_mean(rows: list[dict[str, Any]]) -> float | None:
    values = [r["accuracy"] for r in rows if r["queries"]]
    return float(np.mean(values)) if values else None


def evaluate_run(
    run: Run, dataset: Dataset, shots: int = 1, episodes: int = 200, seed: int = 0, method: str | None = None
) -> dict[str, Any]:
    """The report ``embed eval --json`` prints: per-class and summary accuracy of the run's saved
    index, and episodic means with 95% intervals over ``episodes`` random support draws."""
    method = method or run.metadata["index"]["method"]
    seen = run.trained_classes
    test_labels = dataset.test_labels.numpy()
    train_labels = dataset.train_labels.numpy()
    query_embeddings = run.embedder.embed(dataset.test_images)
    predicted, _ = run.index.classify(query_embeddings, method)
    per_class = per_class_accuracy(predicted, test_labels, dataset.classes, seen)
    unseen = [c for c in dataset.classes if c not in seen]
    summary = {
        "seen": _macro_mean([r for r in per_class if r["seen"]]),
        "unseen": _macro_mean([r for r in per_class if not r["seen"]]),
        "all": _macro_mean(per_class),
        "index_shots": run.metadata["index"]["shots"],
        "method": method,
    }
    support_embeddings = run.embedder.embed(dataset.train_images)
    common = dict(shots=shots, episodes=episodes, seed=seed, method=method)
    result_all = evaluate_episodes(
        support_embeddings, train_labels, query_embeddings, test_labels, dataset.classes, **common
    )
    episode_report: dict[str, Any] = {
        "shots": shots,
        "count": episodes,
        "method": method,
        "all": {"ways": result_all.ways, "mean": result_all.mean, "ci95": result_all.ci95},
    }
    if len(unseen) >= 2:
        result = evaluate_episodes(support_embeddings, train_labels, query_embeddings, test_labels, unseen, **common)
        episode_report["unseen"] = {"ways": result.ways, "mean": result.mean, "ci95": result.ci95}
    return {
        "run": str(run.path),
        "dataset": dataset.name,
        "trained_classes": seen,
        "per_class": per_class,
        "summary": summary,
        "episodes": episode_report,
    }
