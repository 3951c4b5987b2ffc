"""Few-shot classifiers, the easyfsl way: supports first, then queries.

>>> classifier = NearestNeighbor(embedder)
>>> classifier.process_support_set(support_images, support_labels)   # one (or K) per class
>>> scores = classifier(query_images)                                 # (n_queries, n_classes) tensor
>>> labels, distances = classifier.predict(query_images)

``classifier(queries)`` is a module's forward: scores on the module's device (the embedder's parameters'),
differentiable when autograd is on, so a loss on them trains the embedder. ``predict`` is the decision a run
makes, for every method a faiss search (:meth:`SupportIndex.search`) of the method's :meth:`decision index
<FewShotClassifier.decision_index>`: the supports' for ``nn``, the class prototypes' (an index of the same kind
and training) for ``prototype``. Calibration, the open-set evaluation and the episodes decide through the same
call. One small subclass per method, each defining :meth:`FewShotClassifier.score_tensor` and
:meth:`FewShotClassifier.decision_index`; :data:`CLASSIFIERS` maps the ``method`` names of the options to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from embedder.errors import ConfigError, quote
from embedder.fewshot.pool import PoolPoints, Refinement, refine_prototypes
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
        self._tensors: dict[str, torch.Tensor] = {}  # the supports as tensors, made on first use per device
        self._decision: tuple[str, SupportIndex] | None = None  # a method's own index, made on first use
        self.supports_changed()

    @property
    def classes(self) -> list[int]:
        """The class labels, in the order of the score columns."""
        return self.index.classes

    @property
    def device(self) -> torch.device:
        """The embedder's device (its parameters'), the CPU without one."""
        return self.embedder.device if self.embedder is not None else torch.device("cpu")

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
        self._tensors, self._decision = {}, None

    def _version(self) -> str:
        return f"{id(self.index)}#{len(self.index)},{self.index.next_id}"  # an index changed in place is seen

    def _support_tensor(self, name: str, make: Callable[[], np.ndarray], device: torch.device) -> torch.Tensor:
        key = f"{name}@{device}#{self._version()}"
        if key not in self._tensors:
            self._tensors[key] = torch.from_numpy(np.ascontiguousarray(make())).to(device)
        return self._tensors[key]

    # --- queries ---

    def score_tensor(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each query embedding to each class, ``(n_queries, n_classes)``, on the
        embeddings' device, differentiable in them."""
        raise NotImplementedError

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """:meth:`score_tensor` on numpy embeddings."""
        with torch.no_grad():
            return self.score_tensor(torch.from_numpy(np.asarray(embeddings, dtype=np.float32))).numpy()

    def decision_index(self) -> SupportIndex:
        """The index whose search decides a query: what :meth:`predict_embeddings` searches."""
        raise NotImplementedError

    def predict_embeddings(
        self, embeddings: np.ndarray, classes: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's label and its distance to the support (or prototype) that decided it, from the search of
        :meth:`decision_index`; among ``classes`` only, if given (what the answer would be were no other class
        enrolled)."""
        labels, similarity = self.decision_index().search(embeddings, k=1, classes=classes)
        return labels[:, 0], similarity_to_distance(similarity[:, 0])

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        """Scores ``(n_queries, n_classes)`` of uint8 query images (or of float embeddings ``(n, dim)``),
        columns in :attr:`classes` order, on :attr:`device`; differentiable when autograd is on."""
        self.index.check_not_empty()
        if queries.is_floating_point() and queries.dim() == 2:
            embeddings = queries.to(self.device)
        elif self.embedder is None:
            raise ValueError("this classifier has no embedder: give it embeddings (float, (n, dim))")
        else:
            embeddings = self.embedder(queries)
        return self.score_tensor(embeddings.float())

    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels of uint8 query images, and each one's distance to what it matched."""
        return self.predict_embeddings(self._embed(images))


class NearestNeighbor(FewShotClassifier):
    """A query takes the label of its nearest support; a class scores its nearest support's similarity.

    Its decision (:meth:`predict_embeddings`) is the faiss search of the supports. Its scores compare the queries
    with the supports :meth:`SupportIndex.vectors` gives: exact for flat, ivf and hnsw without a PCA, otherwise the
    index's reconstructions (there the search, in the PCA's space, is what decides).
    """

    def decision_index(self) -> SupportIndex:
        self.index.check_not_empty()
        return self.index

    def score_tensor(self, embeddings: torch.Tensor) -> torch.Tensor:
        self.index.check_not_empty()
        vectors = self._support_tensor("vectors", self.index.vectors, embeddings.device)
        columns = self._support_tensor(
            "columns", lambda: np.searchsorted(self.classes, self.index.labels), embeddings.device
        )
        return nearest_scores(embeddings, vectors, columns, len(self.classes))


def nearest_scores(embeddings: torch.Tensor, vectors: torch.Tensor, columns: torch.Tensor, n: int) -> torch.Tensor:
    """Each class's best similarity among its vectors: ``(n_queries, n)``, column ``columns[j]`` for vector ``j``."""
    similarity = embeddings @ vectors.T
    best = similarity.new_full((len(embeddings), n), -torch.inf)
    return best.scatter_reduce(1, columns.expand(len(embeddings), -1), similarity, "amax")


class Prototype(FewShotClassifier):
    """A query takes the label of the nearest class mean (the renormalised mean of that class's shots).

    Its decision is the faiss search of :meth:`SupportIndex.prototype_index`: the prototypes in an index of the
    supports' kind and training, so under a PCA or a quantiser they are scored in the space the supports are.
    Its scores (the differentiable forward) compare the queries with the prototypes themselves.
    """

    def decision_index(self) -> SupportIndex:
        self.index.check_not_empty()
        if self._decision is None or self._decision[0] != self._version():
            self._decision = (self._version(), self.index.prototype_index())
        return self._decision[1]

    def score_tensor(self, embeddings: torch.Tensor) -> torch.Tensor:
        self.index.check_not_empty()
        return embeddings @ self._support_tensor("prototypes", lambda: self.index.prototypes()[0], embeddings.device).T


REFINE_SHOTS = 10  # a class with this many supports or fewer is refined over the pool; more stand as they are


class PoolRefined(FewShotClassifier):
    """Prototypes refined over an unlabelled pool (:mod:`embedder.fewshot.pool`): transductive, beside the
    inductive methods, as easyfsl keeps its soft k-means beside its prototypes.

    A class with at most ``refine_shots`` supports, and not ``settled`` (a class whose supports already summarise
    many labelled images, as a run's k-means centroids do), is decided by one prototype: its anchor if it has one
    (a class the run trained on, by the mean of its labelled images), else its supports' mean refined over
    ``pool`` by ``setting``. Any other class is decided by its supports, as :class:`NearestNeighbor` decides. The
    anchors and the many-shot supports stay fixed and take their own pool mass. With no pool, or a ``setting``
    that does not use it (the run's check found it lost), this is :class:`NearestNeighbor` exactly.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        index: SupportIndex | None = None,
        pool: PoolPoints | None = None,
        anchors: tuple[np.ndarray, np.ndarray] | None = None,
        setting: Refinement = Refinement(),
        refine_shots: int = REFINE_SHOTS,
        settled: Sequence[int] = (),
    ) -> None:
        self.pool, self.setting, self.refine_shots, self.settled = pool, setting, refine_shots, np.asarray(settled)
        dim = embedder.dim if embedder is not None else index.dim  # type: ignore[union-attr]
        self.anchors = anchors if anchors is not None else (np.empty(0, np.int64), np.empty((0, dim), np.float32))
        super().__init__(embedder, index)

    @property
    def uses_pool(self) -> bool:
        return self.pool is not None and len(self.pool.vectors) > 0 and self.setting.used

    def decision_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The vectors that decide, with their labels: prototypes of the few-shot classes, supports of the rest."""
        vectors, labels = self.index.vectors(), self.index.labels
        classes, shots = np.unique(labels, return_counts=True)
        few = classes[(shots <= self.refine_shots) & ~np.isin(classes, self.settled)]
        anchored = few[np.isin(few, self.anchors[0])]
        refined = few[~np.isin(few, self.anchors[0])]
        many = ~np.isin(labels, few)
        fixed = np.concatenate([self.anchors[1], vectors[many]])
        out_vectors, out_labels = [vectors[many]], [labels[many]]
        if len(anchored):
            out_vectors.append(self.anchors[1][[int(np.flatnonzero(self.anchors[0] == c)[0]) for c in anchored]])
            out_labels.append(anchored)
        if len(refined):
            rows = np.isin(labels, refined)
            prototypes, order = refine_prototypes(vectors[rows], labels[rows], fixed, self.pool, self.setting)
            out_vectors.append(prototypes)
            out_labels.append(order)
        return np.concatenate(out_vectors).astype(np.float32), np.concatenate(out_labels)

    def decision_index(self) -> SupportIndex:
        self.index.check_not_empty()
        if not self.uses_pool:
            return self.index
        if self._decision is None or self._decision[0] != self._version():
            self._decision = (self._version(), self.index.holding(*self.decision_vectors()))
        return self._decision[1]

    def score_tensor(self, embeddings: torch.Tensor) -> torch.Tensor:
        decision = self.decision_index()
        vectors = self._support_tensor("decision", decision.vectors, embeddings.device)
        columns = self._support_tensor(
            "decision-columns", lambda: np.searchsorted(self.classes, decision.labels), embeddings.device
        )
        return nearest_scores(embeddings, vectors, columns, len(self.classes))


CLASSIFIERS: dict[str, type[FewShotClassifier]] = {"nn": NearestNeighbor, "prototype": Prototype, "pool": PoolRefined}


def make_classifier(
    method: str, embedder: Embedder | None = None, index: SupportIndex | None = None, **options: Any
) -> FewShotClassifier:
    """The classifier for ``method`` (a key of :data:`CLASSIFIERS`); ``options`` go to the pool method only
    (``pool``, ``anchors``, ``setting``)."""
    if method not in CLASSIFIERS:
        raise ConfigError("method", f"unknown {{method}} {quote(method)}: choose one of {', '.join(CLASSIFIERS)}")
    if method != "pool":
        return CLASSIFIERS[method](embedder, index)
    return PoolRefined(embedder, index, **options)
