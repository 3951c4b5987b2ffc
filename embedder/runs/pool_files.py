"""A run's pool file (``pool-<sha>.npz``, no pickles): what inference keeps of an unlabelled pool, and reading it
back with the run (:mod:`embedder.runs.pool` makes it).

It holds the pool's embeddings, or for a large pool their weighted k-means summary
(:func:`embedder.fewshot.pool.summarise_pool`), a thumbnail of the image nearest each point, and the anchors: the
mean embedding of each trained class. ``run.json``'s ``pool`` entry names the network that embedded it: a pool of
another network is refused here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedder.errors import RunError
from embedder.fewshot.pool import PoolDecision, PoolPoints
from embedder.runs.store import RunDir

ROLE = "pool"
POOL_METHOD = "pool"


@dataclass(frozen=True)
class RunPool:
    """A run's pool as inference uses it, and what the check decided."""

    points: PoolPoints
    anchors: tuple[np.ndarray, np.ndarray]  # trained class labels, their unit mean embeddings
    thumbnails: np.ndarray  # uint8 (points, 28, 28): the pool image nearest each point
    decision: PoolDecision

    def classifier_options(self, settled: list[int] | None = None) -> dict[str, Any]:
        """What :class:`~embedder.fewshot.classifiers.PoolRefined` takes from the run (``settled``: its classes
        that stand as they were indexed, :func:`settled_classes`)."""
        options = {"pool": self.points, "anchors": self.anchors, "setting": self.decision.setting}
        return {**options, "settled": settled or []}

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vectors=self.points.vectors.astype(np.float16),  # unit vectors: half precision loses nothing that counts
            weights=self.points.weights.astype(np.float32),
            members=self.points.members.astype(np.int64),
            thumbnails=self.thumbnails,
            anchor_labels=self.anchors[0].astype(np.int64),
            anchor_vectors=self.anchors[1].astype(np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, decision: PoolDecision, source: str) -> RunPool:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as f:
                points = PoolPoints(f["vectors"].astype(np.float32), f["weights"], f["members"])
                return cls(points, (f["anchor_labels"], f["anchor_vectors"]), f["thumbnails"], decision)
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"{source} is damaged: {exc}") from None


def settled_classes(metadata: dict[str, Any]) -> list[int]:
    """The classes a training indexed by k-means centroids of all their labelled images: refining those over a
    pool would put one prototype in place of many images' summary, so they stand as they are."""
    index = metadata.get("index", {})
    if index.get("shots") or not index.get("centroids"):
        return []
    return [int(r["label"]) for r in index.get("classes", []) if r.get("origin") == "training"]


def read_pool(store: RunDir, manifest: dict[str, Any], metadata: dict[str, Any], dim: int) -> RunPool | None:
    """The run's pool, or None; refused if another network embedded it (its entry names the model's hash)."""
    if ROLE not in manifest["files"]:
        return None
    entry, source = metadata.get("pool") or {}, str(store.file_path(ROLE, manifest))
    if entry.get("model_sha256") != manifest["files"]["model"]["sha256"]:
        raise RunError(f"{source} was embedded by another network: `embed pool {entry.get('source', 'rest')}` again")
    pool = RunPool.from_bytes(store.read(ROLE, manifest), PoolDecision.from_dict(entry["decision"]), source)
    if pool.points.vectors.shape[1] != dim:
        raise RunError(f"{source} holds {pool.points.vectors.shape[1]}-d vectors but the model embeds to {dim}-d")
    return pool
