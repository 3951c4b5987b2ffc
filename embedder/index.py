"""A faiss index of labelled support embeddings: the one-shot memory of the system.

Embeddings are L2-normalised, so an inner-product index ranks by cosine similarity. Class
labels live beside faiss's row ids, so a search answers with labels. Adding a labelled
example enrols its class at once, without retraining the network.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import faiss
import numpy as np

from .artifacts import write_bytes_atomic
from .config import METHODS
from .errors import RunError, UsageError


def _as_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected embeddings of shape (n, {dim}), got {x.shape}")
    return x


class SupportIndex:
    """Labelled support embeddings in a flat inner-product faiss index.

    ``classify(queries, method="nn")`` labels each query with its nearest support;
    ``method="prototype"`` with the nearest class mean (the mean of that class's K shots).
    """

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

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The labels and cosine similarities of each query's ``k`` nearest supports."""
        if len(self) == 0:
            raise RunError("the support index is empty: enrol labelled examples first")
        scores, ids = self.index.search(_as_matrix(queries, self.dim), min(k, len(self)))
        return self.labels[ids], scores

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each class's mean support embedding, renormalised, with the class labels."""
        vectors = self.index.reconstruct_n(0, len(self))
        classes = np.array(self.classes, dtype=np.int64)
        means = np.stack([vectors[self.labels == c].mean(axis=0) for c in classes])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return means.astype(np.float32), classes

    def classify(self, queries: np.ndarray, method: str = "nn") -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels and the Euclidean distance to the matched support (or prototype)."""
        if method == "nn":
            labels, scores = self.search(queries, k=1)
        elif method == "prototype":
            if len(self) == 0:
                raise RunError("the support index is empty: enrol labelled examples first")
            means, classes = self.prototypes()
            prototype_index = SupportIndex(self.dim)
            prototype_index.add(means, classes)
            labels, scores = prototype_index.search(queries, k=1)
        else:
            raise UsageError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        # Unit vectors: |a - b|^2 = 2 - 2 cos.
        distances = np.sqrt(np.clip(2.0 - 2.0 * scores[:, 0], 0.0, None))
        return labels[:, 0], distances

    # --- persistence: one .npz holding faiss's own serialisation and the labels, no pickle ---

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, faiss_index=faiss.serialize_index(self.index), labels=self.labels, dim=np.int64(self.dim))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "index") -> SupportIndex:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                dim = int(arrays["dim"])
                raw, labels = arrays["faiss_index"], arrays["labels"].astype(np.int64)
            index = faiss.deserialize_index(np.ascontiguousarray(raw, dtype=np.uint8))
        except Exception as exc:
            raise RunError(f"{source} is damaged or not a tripletshot index ({type(exc).__name__})") from None
        if index.d != dim or index.ntotal != len(labels):
            raise RunError(f"{source} is inconsistent: {index.ntotal} vectors of dim {index.d}, {len(labels)} labels")
        result = cls(dim)
        result.index, result.labels = index, labels
        return result

    def save(self, path: str | os.PathLike) -> None:
        write_bytes_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SupportIndex:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise RunError(f"{path} is missing: the run has no support index") from None
        return cls.from_bytes(data, source=str(path))
