"""Which images go where: balanced training batches, the validation split, and support draws."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from embedder.errors import ConfigError

if TYPE_CHECKING:
    from embedder.data.dataset import Dataset

# Classes of at least this many times m images are drawn with replacement, as tripletshot 0.2 did, so MNIST
# trains bit-identically; there a repeat is rare (about one image per batch of 192 on MNIST). Smaller classes
# are drawn without replacement: the instance loss would take an image's own copy for a negative.
WITH_REPLACEMENT_FROM = 32


def batch_shape(counts: list[int], m_per_class: int, batch_size: int | None, max_ways: int) -> tuple[int, int]:
    """``(ways, m)``: classes per batch and images of each, for training classes of ``counts`` images.

    ``m`` is at most the smallest class, so no image need appear twice; with a smaller ``m``, a batch holds
    more classes, up to all of them, to keep its size (``batch_size``, else ``m_per_class`` x up to ``max_ways``).
    """
    m = min(m_per_class, min(counts))
    batch = batch_size or m_per_class * min(len(counts), max_ways)
    return min(len(counts), max(2, batch // m)), m


class NoLabelsSampler:
    """The labelled batch of a training on an unlabelled pool alone: empty."""

    batch = 0  # images a batch holds, as BalancedBatchSampler.batch

    def __init__(self, device: torch.device) -> None:
        self.indices = torch.empty(0, dtype=torch.long, device=device)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.indices, self.indices


class BalancedBatchSampler:
    """Draws ``ways`` random classes and ``m`` random images of each, entirely on the device.

    A class smaller than ``WITH_REPLACEMENT_FROM * m`` images never gives one image twice to a batch.
    """

    def __init__(self, labels: torch.Tensor, classes: list[int], m: int, ways: int, generator: torch.Generator) -> None:
        device = labels.device
        rows = [torch.nonzero(labels == c).flatten() for c in classes]
        self.counts = torch.tensor([len(r) for r in rows], device=device)
        self.table = torch.zeros(len(classes), max(len(r) for r in rows), dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            self.table[i, : len(r)] = r
        self.class_of_row = torch.tensor(classes, device=device)
        self.m, self.ways, self.generator = m, ways, generator
        self.distinct = int(self.counts.min()) < WITH_REPLACEMENT_FROM * m
        self.positions = torch.arange(self.table.shape[1], device=device)

    @property
    def batch(self) -> int:
        """Images a batch holds: ``ways`` x ``m``."""
        return self.ways * self.m

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into the labels given at construction, and their class labels."""
        g, device = self.generator, self.table.device
        rows = torch.randperm(len(self.counts), generator=g, device=device)[: self.ways]
        if self.distinct:  # the m smallest of random keys, past each class's end never chosen: m distinct images
            keys = torch.rand(self.ways, len(self.positions), generator=g, device=device)
            keys.masked_fill_(self.positions >= self.counts[rows, None], 2.0)
            offsets = keys.topk(self.m, dim=1, largest=False).indices
        else:
            offsets = (torch.rand(self.ways, self.m, generator=g, device=device) * self.counts[rows, None]).long()
        indices = self.table[rows[:, None], offsets].flatten()
        return indices, self.class_of_row[rows].repeat_interleave(self.m)


class PoolSampler:
    """Draws ``batch`` distinct random images of an unlabelled pool (all of it when smaller), on its device; with
    pseudo-labels (:meth:`with_clusters`), ``batch // m`` random clusters of ``m`` images each instead."""

    def __init__(self, images: torch.Tensor, batch: int, generator: torch.Generator) -> None:
        self.images, self.generator = images, generator
        self.batch = min(batch, len(images))
        self.labels: torch.Tensor | None = None
        self.clusters: BalancedBatchSampler | None = None

    def with_clusters(self, labels: torch.Tensor, m: int = 8) -> None:
        """Draw by ``labels`` (one per image) from now on; clusters under ``m`` images wait for the next ones."""
        self.labels = labels.to(self.images.device)
        counts = torch.bincount(self.labels)
        kept = torch.nonzero(counts >= m).flatten().tolist()
        ways = max(2, self.batch // m)
        if len(kept) < 2:  # too few clusters of m images: random images, the other view their only positive
            self.clusters = None
            return
        self.clusters = BalancedBatchSampler(self.labels, kept, m, min(ways, len(kept)), self.generator)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's uint8 images, and their pseudo-labels if any."""
        if self.clusters is not None:
            indices, labels = self.clusters.sample()
            return self.images[indices], labels
        chosen = torch.randperm(len(self.images), generator=self.generator, device=self.images.device)
        return self.images[chosen[: self.batch]], None


def hold_out(dataset: Dataset, classes: list[int], others: list[int], fraction: float, seed: int) -> Dataset:
    """``dataset`` with its held-out rows drawn, once for a training: the share ``fraction`` of each of ``classes``
    (validation and the threshold's genuine images) and of each of ``others`` (the classes beside them: the
    threshold's unseen impostors, which a pool leaves out). What :func:`validation_split` reads from then on."""
    labels = dataset.train_labels
    rows = [split_validation(labels, classes, fraction, seed)[1], split_validation(labels, others, fraction, seed)[1]]
    return replace(dataset, held_out=np.sort(np.concatenate(rows)))


def validation_split(dataset: Dataset, classes: list[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train-split rows of ``classes``: those trained on and those held out. The held-out rows are the dataset's
    (:func:`hold_out`, stored in a run), else drawn as :func:`split_validation` draws them (a run from before)."""
    if dataset.held_out is None:
        return split_validation(dataset.train_labels, classes, fraction, seed)
    labels = dataset.train_labels.numpy()
    held_out = dataset.held_out[np.isin(labels[dataset.held_out], classes)]
    return np.setdiff1d(np.flatnonzero(np.isin(labels, classes)), held_out), np.sort(held_out)


def split_validation(
    labels: torch.Tensor, classes: list[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training classes' train-split images, split into train and validation.

    A class keeps at least two training images (one triplet's worth) where it has two.
    """
    rng = np.random.default_rng(seed)
    train, val = [np.empty(0, np.int64)], [np.empty(0, np.int64)]  # no class: none of either
    for c in classes:
        rows = rng.permutation(np.flatnonzero(labels.numpy() == c))
        n_val = min(int(round(len(rows) * fraction)), max(0, len(rows) - 2))
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def sample_supports(
    labels: np.ndarray, classes: list[int], shots: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Indices into ``labels``: ``shots`` distinct examples of each class, none of them in ``exclude``."""
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    chosen = []
    for c in classes:
        pool = np.flatnonzero((labels == c) & allowed)
        if len(pool) < shots:
            raise ConfigError("shots", f"class {c} has {len(pool)} support candidates, fewer than {{shots}} {shots}")
        chosen.append(rng.choice(pool, size=shots, replace=False))
    return np.concatenate(chosen)
