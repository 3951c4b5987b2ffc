"""N-way 1-shot episodes drawn once and scored on any features: the same episodes for every epoch and baseline.

Training scores its validation classes with them (:mod:`embedder.training.held_out`): drawn from a seed once,
the episodes make the score of one epoch comparable with the next, and with raw pixels and HOG-like features
scored on the very same supports and queries. Each episode's supports are drawn by
:func:`~embedder.data.sampling.sample_supports`, as ``embed eval``'s episodes are, and scored as they are: a
:class:`~embedder.fewshot.classifiers.NearestNeighbor` over the episode's supports, whose decision is the
index's search (cosine: the features are unit vectors). For one shot, ``nn`` and ``prototype`` are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.data.sampling import sample_supports
from embedder.fewshot.classifiers import NearestNeighbor
from embedder.index.support_index import SupportIndex

EPISODE_WAYS = 20  # N = min(20, classes): Omniglot's 20-way (not config.MAX_WAYS, the classes of a batch)
EPISODES = 100
POOL = 50  # images of a class the episodes draw from: each episode's support is one, its queries the others


@dataclass(frozen=True)
class FixedEpisodes:
    """Episodes over the images ``rows`` (indices into the labels they were drawn from): embed those, then score."""

    rows: np.ndarray  # the images the episodes use, in the order ``score`` expects their features
    supports: np.ndarray  # (episodes, ways): positions in ``rows`` of each episode's one support of each class
    queries: tuple[np.ndarray, ...]  # per episode, positions in ``rows`` of its queries
    truth: tuple[np.ndarray, ...]  # per episode, the column of ``supports`` holding each query's class

    @property
    def ways(self) -> int:
        return self.supports.shape[1]

    @property
    def count(self) -> int:
        return len(self.supports)

    @classmethod
    def draw(
        cls, labels: np.ndarray, classes: list[int], seed: int, episodes: int = EPISODES, pool: int = POOL
    ) -> FixedEpisodes:
        """``min(20, len(classes))``-way 1-shot episodes over up to ``pool`` seeded images of each of ``classes``."""
        rng = np.random.default_rng(seed)
        rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:pool] for c in classes])
        pooled = np.asarray(labels)[rows]
        ways = min(EPISODE_WAYS, len(classes))
        supports, queries, truth = [], [], []
        for _ in range(episodes):
            chosen = np.sort(rng.choice(np.asarray(classes), ways, replace=False))
            picks = sample_supports(pooled, chosen.tolist(), 1, rng)  # one per class, in chosen's order
            others = np.flatnonzero(np.isin(pooled, chosen) & ~np.isin(np.arange(len(rows)), picks))
            supports.append(picks)
            queries.append(others)
            truth.append(np.searchsorted(chosen, pooled[others]))
        return cls(rows, np.asarray(supports), tuple(queries), tuple(truth))

    def score(self, features: np.ndarray) -> float:
        """Mean accuracy over the episodes of unit ``features`` of ``rows`` (row ``i`` is image ``rows[i]``'s)."""
        features = np.asarray(features, dtype=np.float32)
        classifier = NearestNeighbor(index=SupportIndex(features.shape[1]))
        accuracies = []
        for s, q, t in zip(self.supports, self.queries, self.truth, strict=True):
            if len(q):
                classifier.set_support_embeddings(features[s], np.arange(self.ways))
                accuracies.append(float(np.mean(classifier.predict_embeddings(features[q])[0] == t)))
        return float(np.mean(accuracies)) if accuracies else float("nan")
