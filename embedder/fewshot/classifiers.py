"""Few-shot classifiers, the easyfsl way: supports first, then queries.

>>> classifier = NearestNeighbor(embedder)
>>> classifier.process_support_set(support_images, support_labels)   # one (or K) per class
>>> scores = classifier(query_images)                                 # (n_queries, n_classes) tensor
>>> labels, distances = classifier.predict(query_images)

One small subclass per method, each defining :meth:`FewShotClassifier.scores` on embeddings.
:data:`CLASSIFIERS` maps the ``method`` names of the options to them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from embedder.errors import ConfigError, quote
from embedder.index.support_index import SupportIndex, similarity_to_distance
from embedder.models.embedder import Embedder


class FewShotClassifier(nn.Module):
    """Labels queries from a labelled support set held in a :class:`SupportIndex`.

    Scores are cosine similarities, one column per class of :attr:`classes`. ``embedder`` may be
    ``None`` for a classifier used on embeddings only (``*_embeddings`` methods).
    """

    def __init__(self, embedder: Embedder | None = None, index: SupportIndex | None = None) -> None:
        super().__init__()
        if embedder is None and index is None:
            raise ValueError("give an embedder, an index, or both")
        self.embedder = embedder
        self.index = index if index is not None else SupportIndex(embedder.dim)  # type: ignore[union-attr]
        self.supports_changed()

    @property
    def classes(self) -> list[int]:
        """The class labels, in the order of the score columns."""
        return self.index.classes

    def _embed(self, images: torch.Tensor) -> np.ndarray:
        if self.embedder is None:
            raise ValueError("this classifier has no embedder: give it embeddings (the *_embeddings methods)")
        return self.embedder.embed(images)

    # --- supports ---

    def process_support_set(self, images: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int]) -> None:
        """Replace the supports with these labelled images."""
        self.set_support_embeddings(self._embed(images), labels)

    def enrol(self, images: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int]) -> None:
        """Add labelled images to the supports, e.g. a class the network never saw. No retraining."""
        self.add_support_embeddings(self._embed(images), labels)

    def set_support_embeddings(self, embeddings: np.ndarray, labels: torch.Tensor | np.ndarray | list[int]) -> None:
        self.index = self.index.empty_copy()  # same kind of index, same training
        self.add_support_embeddings(embeddings, labels)

    def add_support_embeddings(self, embeddings: np.ndarray, labels: torch.Tensor | np.ndarray | list[int]) -> None:
        self.index.add(embeddings, np.asarray(labels))
        self.supports_changed()

    def supports_changed(self) -> None:
        """Called whenever the supports change: a method that precomputes from them does it here."""

    # --- queries ---

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarity of each query embedding to each class, ``(n_queries, n_classes)``."""
        raise NotImplementedError

    def predict_embeddings(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's label and its distance to the support (or prototype) that decided it."""
        scores = self.scores(embeddings)
        best = scores.argmax(axis=1)
        labels = np.asarray(self.classes, dtype=np.int64)[best]
        return labels, similarity_to_distance(scores[np.arange(len(scores)), best])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Scores ``(n_queries, n_classes)`` of uint8 query images, columns in :attr:`classes` order."""
        return torch.from_numpy(self.scores(self._embed(images)))

    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels of uint8 query images, and each one's distance to what it matched."""
        return self.predict_embeddings(self._embed(images))


class NearestNeighbor(FewShotClassifier):
    """A query takes the label of its nearest support; a class scores its nearest support's similarity."""

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        self.index.check_not_empty()
        similarity = embeddings @ self.index.vectors().T
        columns = [similarity[:, self.index.labels == c].max(axis=1) for c in self.classes]
        return np.stack(columns, axis=1)

    def predict_embeddings(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, similarity = self.index.search(embeddings, k=1)  # faiss, without the full score matrix
        return labels[:, 0], similarity_to_distance(similarity[:, 0])


class Prototype(FewShotClassifier):
    """A query takes the label of the nearest class mean (the renormalised mean of that class's shots)."""

    def supports_changed(self) -> None:
        self._prototypes = self.index.prototypes()[0] if len(self.index) else None

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        self.index.check_not_empty()
        return embeddings @ self._prototypes.T


CLASSIFIERS: dict[str, type[FewShotClassifier]] = {"nn": NearestNeighbor, "prototype": Prototype}


def make_classifier(
    method: str, embedder: Embedder | None = None, index: SupportIndex | None = None
) -> FewShotClassifier:
    """The classifier for ``method`` (a key of :data:`CLASSIFIERS`)."""
    if method not in CLASSIFIERS:
        raise ConfigError("method", f"unknown {{method}} {quote(method)}: choose one of {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[method](embedder, index)
