"""A faiss index of labelled support embeddings: the one-shot memory of the system.

Embeddings are L2-normalised, so an inner-product index ranks by cosine similarity. Class
labels live beside faiss's row ids, so a search answers with labels. Adding a labelled
example enrols its class at once, without retraining the network. How queries are labelled
from it (nearest support, nearest prototype) is :mod:`embedder.fewshot`'s business; how it is
kept in a run is :mod:`embedder.store`'s.
"""

from __future__ import annotations

import io

import faiss
import numpy as np

from .errors import EmptyIndexError


def _as_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected embeddings of shape (n, {dim}), got {x.shape}")
    return x


def similarity_to_distance(similarity: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine similarity: ``|a - b|^2 = 2 - 2 cos``."""
    return np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, None))


class SupportIndex:
    """Labelled support embeddings in a flat inner-product faiss index."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.labels = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def classes(self) -> list[int]:
        return sorted(np.unique(self.labels).tolist())

    def add(self, embeddings: np.ndarray, labels: np.ndarray | list[int]) -> None:
        """Enrol labelled examples; a label never seen before adds a new class."""
        embeddings = _as_matrix(embeddings, self.dim)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(embeddings):
            raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
        self.index.add(embeddings)
        self.labels = np.concatenate([self.labels, labels])

    def remove(self, label: int) -> int:
        """Forget a class: drop every support with this label. Returns how many were dropped."""
        keep = self.labels != label
        removed = int((~keep).sum())
        if removed:
            vectors = self.vectors()[keep]
            self.index.reset()
            self.index.add(vectors)
            self.labels = self.labels[keep]
        return removed

    def check_not_empty(self) -> None:
        if len(self) == 0:
            raise EmptyIndexError("the support index is empty: enrol labelled examples first")

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The labels and cosine similarities of each query's ``k`` nearest supports."""
        self.check_not_empty()
        scores, ids = self.index.search(_as_matrix(queries, self.dim), min(k, len(self)))
        return self.labels[ids], scores

    def vectors(self) -> np.ndarray:
        """Every support embedding, in insertion order (row ``i`` has label ``labels[i]``)."""
        if not len(self):
            return np.empty((0, self.dim), np.float32)
        # asarray: once faiss.contrib.torch_utils is imported (PML's AccuracyCalculator does), this is a tensor.
        return np.asarray(self.index.reconstruct_n(0, len(self)))

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each class's mean support embedding, renormalised, with the class labels."""
        self.check_not_empty()
        vectors = self.vectors()
        classes = np.array(self.classes, dtype=np.int64)
        means = np.stack([vectors[self.labels == c].mean(axis=0) for c in classes])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return means.astype(np.float32), classes

    # --- serialisation: one .npz holding faiss's own serialisation and the labels, no pickle ---

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, faiss_index=faiss.serialize_index(self.index), labels=self.labels, dim=np.int64(self.dim))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "index") -> SupportIndex:
        """Read :meth:`to_bytes` output; ``ValueError`` naming ``source`` if it is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                dim = int(arrays["dim"])
                raw, labels = arrays["faiss_index"], arrays["labels"].astype(np.int64)
            index = faiss.deserialize_index(np.ascontiguousarray(raw, dtype=np.uint8))
        except Exception as exc:
            raise ValueError(f"{source} is damaged or not a tripletshot index ({type(exc).__name__})") from None
        if index.d != dim or index.ntotal != len(labels):
            raise ValueError(f"{source} is inconsistent: {index.ntotal} vectors of dim {index.d}, {len(labels)} labels")
        result = cls(dim)
        result.index, result.labels = index, labels
        return result
