"""What nobody named: the clusters of a run's pool that no class claims, for ``embed report`` and ``embed serve``.

A pool point is claimed when ``embed predict`` would give it a class: its distance to the nearest class is under
that class's open-set threshold (the run's calibration, :func:`embedder.fewshot.openset.limits`). The others are
what the run would call ``unknown``; their weighted spherical k-means clusters, largest first, are shown with the
thumbnails of the pool images nearest each centre. ``embed enroll --label NAME --pool-image ID`` names a class
from one of them (:func:`pool_images`).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import torch

from embedder.errors import ConfigError, RunError
from embedder.fewshot.openset import limits
from embedder.runs.calibration import run_calibration
from embedder.runs.run import Run

CLUSTERS = 8
THUMBNAILS = 8  # a cluster's pictures: its points nearest the centre


@dataclass(frozen=True)
class UnclaimedCluster:
    images: int  # pool images it stands for (a summary point counts its members)
    ids: list[int]  # pool image ids (``--pool-image``) nearest its centre, nearest first
    thumbnails: np.ndarray  # uint8 (len(ids), 28, 28)


def claimed(run: Run) -> np.ndarray:
    """For each pool point: whether the run would give it a class (every point, for a run without a threshold)."""
    pool, calibration = _pool(run), run_calibration(run)
    if calibration is None:
        return np.ones(len(pool.points.vectors), dtype=bool)
    classifier = run.classifier()
    predicted, distance = classifier.predict_embeddings(pool.points.vectors)
    return distance < limits(calibration, classifier, pool.points.vectors, predicted)


def unclaimed_clusters(run: Run, count: int = CLUSTERS, thumbnails: int = THUMBNAILS) -> list[UnclaimedCluster]:
    """The pool's unclaimed points in up to ``count`` clusters, largest first."""
    pool = _pool(run)
    rows = np.flatnonzero(~claimed(run))
    if len(rows) == 0:
        return []
    x, w = np.ascontiguousarray(pool.points.vectors[rows]), pool.points.weights[rows].astype(np.float32)
    k = min(count, len(rows))
    kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=0, spherical=True, min_points_per_centroid=1)
    kmeans.train(x, weights=w)
    similarity = x @ kmeans.centroids.T
    assigned = similarity.argmax(axis=1)
    clusters = []
    for c in range(k):
        members = np.flatnonzero(assigned == c)
        if len(members):
            nearest = members[np.argsort(-similarity[members, c])][:thumbnails]
            ids = rows[nearest]
            clusters.append(UnclaimedCluster(int(round(float(w[members].sum()))), ids.tolist(), pool.thumbnails[ids]))
    return sorted(clusters, key=lambda cluster: -cluster.images)


def pool_images(run: Run, ids: list[int]) -> torch.Tensor:
    """The pool's thumbnails ``ids`` as uint8 images, to enrol."""
    pool = _pool(run)
    bad = [i for i in ids if not 0 <= i < len(pool.thumbnails)]
    if bad:
        last = len(pool.thumbnails) - 1
        raise ConfigError("pool_image", f"{{pool_image}} {bad[0]}: the run's pool has images 0-{last}")
    return torch.from_numpy(pool.thumbnails[np.asarray(ids, dtype=np.int64)].copy())


def _pool(run: Run):
    if run.pool is None:
        raise RunError(f"{run.path} has no pool: `embed pool rest|PATH` gives it one")
    return run.pool
