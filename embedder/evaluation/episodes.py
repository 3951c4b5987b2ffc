"""Evaluation: per-class accuracy of a run's own index, and episodic N-way K-shot accuracy.

Episodes draw K supports per class from one pool (the train split) and label every query of those
N classes from another (the test split), many times over; the mean comes with a 95% interval.
Queries always come from the test split and supports from the train split, so they never overlap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedder.config import EvalConfig
from embedder.data.dataset import Dataset
from embedder.data.sampling import sample_supports, validation_split
from embedder.errors import ConfigError, RunError
from embedder.evaluation.pml_metrics import grouped_accuracy_calculator
from embedder.fewshot.classifiers import make_classifier
from embedder.fewshot.openset import evaluate_open_set, stored_statement
from embedder.index.support_index import SupportIndex
from embedder.index.supports import centroids_note, describe_rule
from embedder.runs.calibration import run_calibration
from embedder.runs.run import Run
from embedder.runs.store import RunDir, interrupted_training
from embedder.utils.progress import progress_bar


@dataclass(frozen=True)
class EpisodeResult:
    ways: int
    shots: int
    count: int
    mean: float
    ci95: float
    per_class: dict[int, tuple[float, float]] = field(default_factory=dict)  # class: (mean, ci95) over episodes

    def as_dict(self) -> dict:
        return asdict(self)


def finite_or_none(value: float) -> float | None:
    """A report's number, or None where it has none (NaN): ``None`` is JSON's ``null``, NaN is no JSON at all."""
    return None if value is None or not math.isfinite(value) else float(value)


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
    progress: bool = False,
    options: dict[str, Any] | None = None,
) -> EpisodeResult:
    """Mean accuracy over ``episodes`` random ``len(classes)``-way ``shots``-shot support draws, overall and
    per class (each with its 95% interval).

    Every query of the chosen classes is labelled in every episode; the draws are seeded. ``options`` go to the
    pool method's classifier (:func:`~embedder.fewshot.classifiers.make_classifier`).
    """
    EvalConfig(shots=shots, episodes=episodes, seed=seed, method=method)  # checks them
    rng = np.random.default_rng(seed)
    in_episode = np.isin(query_labels, classes)
    queries, truth = query_embeddings[in_episode], query_labels[in_episode]
    of_class = truth[:, None] == np.asarray(classes)[None, :]  # (queries, classes)
    classifier = make_classifier(method, index=SupportIndex(support_embeddings.shape[1]), **(options or {}))
    accuracies, class_accuracies = np.empty(episodes), np.empty((episodes, len(classes)))
    with progress_bar(episodes, f"{len(classes)}-way episodes", progress) as bar:
        for e in range(episodes):
            chosen = sample_supports(support_labels, classes, shots, rng)
            classifier.set_support_embeddings(support_embeddings[chosen], support_labels[chosen])
            correct = classifier.predict_embeddings(queries)[0] == truth
            accuracies[e] = float(correct.mean())
            class_accuracies[e] = (correct[:, None] & of_class).sum(0) / np.maximum(of_class.sum(0), 1)
            bar.update()
    per_class = {int(c): mean_ci95(class_accuracies[:, i]) for i, c in enumerate(classes) if of_class[:, i].any()}
    return EpisodeResult(len(classes), shots, episodes, *mean_ci95(accuracies), per_class=per_class)


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
                "accuracy": float((predicted[mask] == c).mean()) if mask.any() else None,
            }
        )
    return rows


def _macro_mean(rows: list[dict[str, Any]]) -> float | None:
    values = [r["accuracy"] for r in rows if r["queries"]]
    return float(np.mean(values)) if values else None


def _episodes_report(
    support: tuple[np.ndarray, np.ndarray], query: tuple[np.ndarray, np.ndarray], classes: list[int], unseen: list[int],
    config: EvalConfig, method: str, progress: bool, options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], EpisodeResult]:  # fmt: skip
    """The report's ``episodes`` part, and the all-class result (its per-class means go into ``per_class``)."""
    common = dict(shots=config.shots, episodes=config.episodes, seed=config.seed, method=method, progress=progress)
    common["options"] = options
    report: dict[str, Any] = {"shots": config.shots, "count": config.episodes, "method": method}
    groups = {"all": classes, "unseen": unseen} if len(unseen) >= 2 else {"all": classes}
    results = {name: evaluate_episodes(*support, *query, group, **common) for name, group in groups.items()}
    for name, result in results.items():
        report[name] = {"ways": result.ways, "mean": result.mean, "ci95": finite_or_none(result.ci95)}  # 1: None
    return report, results["all"]


@dataclass(frozen=True)
class RunEvaluation:
    """:func:`evaluate_run`'s report with the arrays behind it, for figures (:mod:`embedder.evaluation.report`)."""

    report: dict[str, Any]
    test_embeddings: np.ndarray  # (N, dim), the test split's, in its order
    predicted: np.ndarray  # the saved index's label for each test image
    distances: np.ndarray  # and its distance to the support (or prototype) that decided it


def evaluate_run(
    run: Run, dataset: Dataset, config: EvalConfig = EvalConfig(), progress: bool = False
) -> dict[str, Any]:
    """The report ``embed eval --json`` prints: per-class and summary accuracy of the run's saved
    index, and episodic means with 95% intervals over ``episodes`` random support draws.

    Summary accuracies are macro means: the mean of the per-class accuracies, each class counting once.
    """
    return evaluate_run_in_detail(run, dataset, config, progress).report


def evaluate_run_in_detail(
    run: Run, dataset: Dataset, config: EvalConfig = EvalConfig(), progress: bool = False
) -> RunEvaluation:
    """:func:`evaluate_run`, keeping the test embeddings and the saved index's predictions (each computed once)."""
    method = config.method or run.metadata["index"]["method"]
    seen = run.trained_classes
    test_labels, train_labels = dataset.test_labels.numpy(), dataset.train_labels.numpy()
    query_embeddings = run.embedder.embed(dataset.test_images, progress)
    predicted, distances = run.classifier(method).predict_embeddings(query_embeddings)
    per_class = per_class_accuracy(predicted, test_labels, dataset.classes, seen, dataset.class_names)
    unseen = [c for c in dataset.classes if c not in seen]
    summary = {
        "seen": _macro_mean([r for r in per_class if r["seen"]]),
        "unseen": _macro_mean([r for r in per_class if not r["seen"]]),
        "all": _macro_mean(per_class),
        "averaging": "macro: the mean of per-class accuracies",
        "index_shots": run.metadata["index"]["shots"],
        "index_rule": run.metadata["index"].get("rule") or describe_rule(run.metadata["index"]["shots"], None),
        "method": method,
        "index_sources": index_sources(run, dataset),
    }
    support = (run.embedder.embed(dataset.train_images, progress), train_labels)
    query = (query_embeddings, test_labels)
    episode_report, all_classes = _episodes_report(
        support, query, dataset.classes, unseen, config, method, progress, run.classifier_options(method)
    )
    if method == "pool":  # beside it, what the same episodes score without the pool: the gain in sight
        plain = _episodes_report(support, query, dataset.classes, unseen, config, "nn", False)
        episode_report["without_pool"] = plain[0]
        episode_report["pool"] = run.metadata["pool"]["description"] + "; " + run.metadata["pool"]["decision"]["reason"]
    for row in per_class:
        mean, ci95 = all_classes.per_class.get(row["class"], (None, None))
        row["episodes"] = {"mean": finite_or_none(mean), "ci95": finite_or_none(ci95)}
    report = {
        "run": str(run.path),
        "dataset": dataset.name,
        "trained_classes": seen,
        "trained_class_names": [dataset.class_names[c] for c in seen],
        "trained_on": run.trained_on,
        "pending_training": pending_training(run),
        "per_class": per_class,
        "summary": summary,
        "episodes": episode_report,
        "accuracy_calculator": grouped_accuracy_calculator(
            query_embeddings, test_labels, *support, {"seen": seen, "unseen": unseen, "all": dataset.classes}
        ),
    }
    if config.open_set:
        report["open_set"] = open_set_report(run, method, query_embeddings, test_labels, unseen)
    return RunEvaluation(report, query_embeddings, predicted, distances)


def pending_training(run: Run) -> str | None:
    """``run``'s folder also holds an unfinished training, which replaces the run when it completes: how far it
    got, and how to finish it (the figures are the committed run's); None if not."""
    try:
        done = interrupted_training(RunDir(run.path), run.manifest)
    except (RunError, OSError):  # a running training committed a newer checkpoint meanwhile
        return f"{run.path} holds a training in progress, not yet part of this run: these figures are the run's"
    if done is None:
        return None
    return (
        f"{run.path} also holds an unfinished training ({done}), not yet part of this run: these figures are the "
        f"committed run's; if it was interrupted, `embed train --resume --run-dir {run.path}` finishes it"
    )


def open_set_report(
    run: Run, method: str, embeddings: np.ndarray, labels: np.ndarray, unseen: list[int]
) -> dict[str, Any]:
    """:func:`~embedder.fewshot.openset.evaluate_open_set` over the unseen classes, at the run's stored threshold."""
    if not unseen:
        raise ConfigError("open_set", "{open_set} leaves out classes the run was not trained on, and it has none")
    calibrated = run_calibration(run)
    report = evaluate_open_set(run.index, method, embeddings, labels, unseen, calibrated)
    report["far"] = calibrated.far if calibrated else None
    report["statement"] = calibrated.statement() if calibrated else None  # what the run states, as everywhere
    return report


def open_set_summary(stored: dict[str, Any] | None) -> str:
    """A run's stored calibration in one sentence (its distances left out)."""
    return stored_statement(stored)


def index_sources(run: Run, dataset: Dataset) -> dict[str, Any]:
    """What stands behind each class of the run's saved index: its rule, and how many labelled train-split
    images the training indexed of each dataset class (the held-out calibration images left out), unseen
    classes included. The honest caption of every accuracy the saved index scores."""
    index, options = run.metadata["index"], run.metadata.get("options", {})
    labels = dataset.train_labels.numpy()
    fraction, seed = options.get("val_fraction", 0.1), options.get("seed", 0)
    _, held_out = validation_split(dataset, run.trained_classes, fraction, seed)
    counts = np.bincount(np.delete(labels, held_out), minlength=len(dataset.class_names))
    shots = index.get("shots")
    images = {int(c): int(min(shots, counts[c]) if shots else counts[c]) for c in dataset.classes}
    vectors = np.bincount(run.index.labels, minlength=len(dataset.class_names))
    return {
        "rule": index.get("rule") or describe_rule(shots, index.get("centroids")),
        "centroids": None if shots else index.get("centroids"),
        "labelled_images": images,
        "vectors": {int(c): int(vectors[c]) for c in dataset.classes},  # in the index now, of each dataset class
        "trained_class_names": [dataset.class_names[c] for c in run.trained_classes],
        "pooled": bool(run.metadata.get("unlabelled")),  # trained on unlabelled images too
    }


def describe_sources(sources: dict[str, Any]) -> str:
    """``up to 32 k-means centroids of each class, from 5,421-6,742 labelled images a class; the network trained on
    0,1,2 only``: the saved index in words."""
    counts = sorted(sources["labelled_images"].values())
    many = f"{counts[0]:,}" if counts[0] == counts[-1] else f"{counts[0]:,}-{counts[-1]:,}"
    present = [n for n in sources.get("vectors", {}).values() if n]  # a forgotten class has none
    note = centroids_note(sources.get("centroids"), present)
    unseen = len(sources["labelled_images"]) > len(sources["trained_class_names"])
    labels = ",".join(sources["trained_class_names"])
    if sources.get("pooled"):  # it saw the other classes' images too, unlabelled: never "only"
        network = f"the network trained on {f'labels of {labels}' if labels else 'no labels'} and an unlabelled pool"
    else:
        network = f"the network trained on {labels or 'no labels'}{' only' if unseen else ''}"
    return (
        f"{sources['rule']}{note}, from {many} labelled image{'s' if counts[-1] > 1 else ''} a class"
        f"{' (unseen ones included)' if unseen else ''}; {network}"
    )
