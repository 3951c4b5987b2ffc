"""Pseudo-labels for an unlabelled pool: k-means of its embeddings into many more clusters than it has classes.

Over-clustering (DeepCluster, SCAN) turns instance contrast's spread into groups that class contrast can pull
together: a cluster is mostly one class even when a class spans several clusters. The clusters are drawn again
every few epochs (:func:`refresh_due`), from the network as it is then, so they follow what it learns.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from embedder.models.embedder import Embedder


def refresh_due(epoch: int, epochs: int) -> bool:
    """Whether epoch ``epoch`` (1-based) starts with new clusters: from the second epoch on, about eight times a
    training (the first epoch's instance contrast gives them something to group)."""
    return epoch >= 2 and (epoch - 2) % max(1, math.ceil(epochs / 8)) == 0


def cluster_labels(embedder: Embedder, images: torch.Tensor, clusters: int, seed: int) -> torch.Tensor:
    """int64 cluster of every image: spherical k-means of its embedding into ``clusters`` (fewer for a small pool)."""
    import faiss

    features = np.ascontiguousarray(embedder.embed(images), dtype=np.float32)
    k = max(2, min(clusters, len(features) // 4))
    kmeans = faiss.Kmeans(features.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.cp.min_points_per_centroid = 1  # a small pool's few points a cluster is intended: no warning
    kmeans.train(features)
    _, assigned = kmeans.index.search(features, 1)
    return torch.from_numpy(assigned[:, 0].astype(np.int64))
