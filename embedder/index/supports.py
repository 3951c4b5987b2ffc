"""Which vectors represent each class in a run's saved index.

A class has thousands of labelled train-split images; one random shot of it throws them away and
makes the index's accuracy a lottery (one MNIST digit scored 3.9% on a blot of a support). By
default a training indexes up to :data:`DEFAULT_CENTROIDS` spherical k-means centroids of each
class's embeddings instead: a compact summary of all its images, modes included. On the selection
protocol (Fashion-MNIST train split, trained on 0,1,2; ``python bench/ablation.py --protocol index``)
20 centroids per class beat 20 random shots by 13 points and the image nearest each centroid by 4.

``--shots N`` keeps the old rule: N random images of each class (the one-shot setting).
"""

from __future__ import annotations

import faiss
import numpy as np

from embedder.index.spec import DEFAULT_CENTROIDS
from embedder.index.support_index import POINTS_PER_CENTROID


def describe_rule(shots: int | None, centroids: int | None) -> str:
    """The index rule in words, as run.json and the commands show it."""
    if shots:
        return f"{shots} random shot{'s' if shots > 1 else ''} of each class"
    return f"up to {centroids} k-means centroids of each class"


def centroids_note(most: int | None, per_class: list[int]) -> str:
    """Why a class holds fewer than ``most`` centroids: `` (2-3 a class here: ...)``; empty when none does."""
    if not most or not per_class or min(per_class) >= most:
        return ""
    low, high = min(per_class), max(per_class)
    many = str(low) if low == high else f"{low}-{high}"
    return f" ({many} a class here: k-means gets one centroid per {POINTS_PER_CENTROID} labelled images at most)"


def centroid_count(images: int, most: int = DEFAULT_CENTROIDS) -> int:
    """How many centroids a class of ``images`` images gets: at most ``most``, one for a small class."""
    return max(1, min(most, images // POINTS_PER_CENTROID))


def class_centroids(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` unit-norm spherical k-means centroids ``(k, dim)`` of one class's unit ``embeddings``."""
    if k == 1:
        mean = embeddings.mean(axis=0, keepdims=True)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)
    kmeans = faiss.Kmeans(embeddings.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.train(np.ascontiguousarray(embeddings, dtype=np.float32))
    return kmeans.centroids.copy()


def nearest_rows(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """For each centroid, the position of the embedding nearest it (the image that shows it in figures)."""
    return np.argmax(centroids @ embeddings.T, axis=1)


def centroid_supports(
    embeddings: np.ndarray, labels: np.ndarray, classes: list[int], most: int = DEFAULT_CENTROIDS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids of each class of ``classes``, their labels, and for each the position of its nearest embedding."""
    vectors, vector_labels, nearest = [], [], []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        centroids = class_centroids(embeddings[rows], centroid_count(len(rows), most), seed)
        vectors.append(centroids)
        vector_labels.append(np.full(len(centroids), c, dtype=np.int64))
        nearest.append(rows[nearest_rows(embeddings[rows], centroids)])
    return np.concatenate(vectors), np.concatenate(vector_labels), np.concatenate(nearest)
