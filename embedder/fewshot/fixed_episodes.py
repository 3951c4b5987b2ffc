"""N-way 1-shot episodes drawn once and scored on any features: the same episodes for every epoch and baseline.

Training scores its validation classes with them (:mod:`embedder.training.held_out`): drawn from a seed once,
the episodes make the score of one epoch comparable with the next, and with raw pixels and HOG-like features
scored on the very same supports and queries. A query is labelled by its most similar support (cosine: the
features are unit vectors), which for one shot is both ``nn`` and ``prototype``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_WAYS = 20  # N = min(20, classes): Omniglot's 20-way
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
        members = [rng.permutation(np.flatnonzero(labels == c))[:pool] for c in classes]
        starts = np.cumsum([0] + [len(m) for m in members])
        ways = min(MAX_WAYS, len(classes))
        supports, queries, truth = [], [], []
        for _ in range(episodes):
            chosen = np.sort(rng.choice(len(classes), ways, replace=False))
            picks = [int(starts[k] + rng.integers(len(members[k]))) for k in chosen]
            others = [
                np.setdiff1d(np.arange(starts[k], starts[k + 1]), [p]) for k, p in zip(chosen, picks, strict=True)
            ]
            supports.append(picks)
            queries.append(np.concatenate(others))
            truth.append(np.repeat(np.arange(ways), [len(o) for o in others]))
        return cls(np.concatenate(members), np.asarray(supports), tuple(queries), tuple(truth))

    def score(self, features: np.ndarray) -> float:
        """Mean accuracy over the episodes of unit ``features`` of ``rows`` (row ``i`` is image ``rows[i]``'s)."""
        features = np.asarray(features, dtype=np.float32)
        accuracies = [
            float(np.mean((features[q] @ features[s].T).argmax(1) == t))
            for s, q, t in zip(self.supports, self.queries, self.truth, strict=True)
            if len(q)
        ]
        return float(np.mean(accuracies)) if accuracies else float("nan")
