"""Metrics people already know: pytorch-metric-learning's ``AccuracyCalculator`` on a run's embeddings.

Test-split embeddings are the queries and train-split embeddings the reference (disjoint, so
``ref_includes_query=False``): ``precision_at_1`` and ``mean_average_precision_at_r`` (MAP@R) rank the
reference for each query; ``NMI`` and ``AMI`` compare a k-means clustering of the queries (faiss, as many
clusters as classes) with their labels. Each is reported for a group of classes (seen, unseen, all), on the
queries and reference of that group only.
"""

from __future__ import annotations

import numpy as np
import torch

RETRIEVAL = ("precision_at_1", "mean_average_precision_at_r")
CLUSTERING = ("NMI", "AMI")
METRICS = RETRIEVAL + CLUSTERING
CHUNK = 2048  # queries per retrieval call: MAP@R looks at as many neighbours as the largest class has


def accuracy_calculator(
    query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray
) -> dict[str, float]:
    """The four metrics for these queries against this reference, as PML computes them.

    The retrieval metrics are means over queries, so they are computed on chunks of queries (the same
    values, in bounded memory) and averaged by chunk size; the clustering ones need all queries at once.
    """
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKMeans

    # PML's own k-means (faiss, 20 iterations), but faiss's warning about fewer than 39 queries a cluster goes
    # unprinted: a test split is what it is, and a user could do nothing about it. min_points_per_centroid only
    # decides that warning here (the subsampling above max_points_per_centroid is unchanged), so NMI is the same.
    kmeans = FaissKMeans(niter=20, min_points_per_centroid=1)
    calculator = AccuracyCalculator(include=METRICS, k="max_bin_count", device=torch.device("cpu"), kmeans_func=kmeans)
    query_labels, reference_labels = np.asarray(query_labels), np.asarray(reference_labels)
    sums = dict.fromkeys(RETRIEVAL, 0.0)
    for start in range(0, len(query), CHUNK):
        end = min(start + CHUNK, len(query))
        chunk = calculator.get_accuracy(
            query[start:end], query_labels[start:end], reference, reference_labels, include=RETRIEVAL
        )
        for name in RETRIEVAL:
            sums[name] += float(chunk[name]) * (end - start)
    result = {name: total / len(query) for name, total in sums.items()}
    clusters = calculator.get_accuracy(query, query_labels, include=CLUSTERING)
    return {**result, **{name: float(clusters[name]) for name in CLUSTERING}}


def grouped_accuracy_calculator(
    query: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    groups: dict[str, list[int]],
) -> dict[str, dict[str, float]]:
    """:func:`accuracy_calculator` for each group of classes with at least two, on that group's images only."""
    report = {}
    for name, classes in groups.items():
        if len(classes) < 2:
            continue
        q, r = np.isin(query_labels, classes), np.isin(reference_labels, classes)
        report[name] = accuracy_calculator(query[q], query_labels[q], reference[r], reference_labels[r])
    return report
