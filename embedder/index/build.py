"""A run's support index: which images stand for each class, and checks that an index can be built.

:func:`build_support_index` and :func:`check_index_training` share :func:`source_rows` and
:func:`trains_on_supports`, so the check made before training is the rule the build follows after it.
"""

from __future__ import annotations

import numpy as np
import torch

from embedder.data.dataset import Dataset
from embedder.data.sampling import sample_supports, validation_split
from embedder.errors import ConfigError
from embedder.index.spec import IndexRule
from embedder.index.support_index import POINTS_PER_CENTROID, SupportIndex, minimum_training
from embedder.index.supports import centroid_count, centroid_supports
from embedder.models.embedder import Embedder


def source_rows(dataset: Dataset, held_out: np.ndarray | None = None) -> np.ndarray:
    """Train-split rows whose embeddings the centroids summarise: every class's, less the ``held_out`` rows
    the open-set threshold is calibrated on."""
    rows = np.flatnonzero(np.isin(dataset.train_labels.numpy(), dataset.classes))
    return np.setdiff1d(rows, held_out if held_out is not None else [])


def trains_on_supports(supports: int, training_images: int) -> bool:
    """An index that learns (a quantiser, a PCA) trains on the supports when they are at least as many as the
    training classes' images, else on those images' embeddings."""
    return supports >= training_images


def build_support_index(
    embedder: Embedder,
    dataset: Dataset,
    rule: IndexRule,
    training_images: torch.Tensor | None = None,
    held_out: np.ndarray | None = None,
) -> tuple[SupportIndex, np.ndarray]:
    """The index of *every* class of the dataset, and the train-split rows of the images behind it.

    With ``rule.shots`` unset, up to ``rule.centroids`` k-means centroids of each class's train-split
    embeddings (:mod:`embedder.index.supports`), leaving out the ``held_out`` rows the open-set threshold is
    calibrated on; the rows returned are the images nearest each centroid. Else ``shots`` seeded random
    images of each class. An index that learns (a quantiser, a PCA) trains on the supports when they
    are at least as many as ``training_images`` (the training classes' images), else on those images'.
    """
    labels = dataset.train_labels.numpy()
    if rule.shots is None:
        rows = source_rows(dataset, held_out)
        supports, support_labels, nearest = centroid_supports(
            embedder.embed(dataset.train_images[rows]), labels[rows], dataset.classes, rule.centroids, rule.seed
        )
        chosen = rows[nearest]
    else:
        rng = np.random.default_rng(rule.seed)  # never a held-out image: the threshold is calibrated on them all
        chosen = sample_supports(labels, dataset.classes, rule.shots, rng, exclude=held_out)
        supports, support_labels = embedder.embed(dataset.train_images[chosen]), labels[chosen]
    index = SupportIndex(embedder.dim, rule.spec)
    if not index.is_trained and training_images is not None:
        on_supports = trains_on_supports(len(supports), len(training_images))
        sample = supports if on_supports else embedder.embed(training_images)
        index.train(sample, rule.seed)
    index.add(supports, support_labels)
    return index, chosen


def check_shots(dataset: Dataset, shots: int | None, held_out: np.ndarray | None = None) -> None:
    """Every class must have ``shots`` train-split images, the ``held_out`` rows aside, to put in the index:
    check before training."""
    if shots is None:
        return
    counts = dataset.class_counts(source_rows(dataset, held_out))
    short = [c for c in dataset.classes if counts[c] < shots]
    if short:
        aside = " outside the held-out ones" if held_out is not None and len(held_out) else ""
        raise ConfigError(
            "shots",
            f"{{shots}} {shots} is more than class {short[0]} has training images{aside} ({counts[short[0]]})",
        )


def check_index_training(dataset: Dataset, rule: IndexRule, dim: int, classes: list[int], val_fraction: float) -> None:
    """The run's index of ``dim``-d embeddings must find enough vectors to train on (:func:`build_support_index`
    trains it on the supports or on the images of the training ``classes``, whichever are more, their held-out
    share ``val_fraction`` aside): check before training, not after."""
    train_rows, held_out = validation_split(dataset, classes, val_fraction, rule.seed)
    check_shots(dataset, rule.shots, held_out)
    spec = rule.spec
    needed = minimum_training(spec, dim)
    if rule.shots is None:  # the centroids build_support_index will make, from the same rows
        counts = dataset.class_counts(source_rows(dataset, held_out))
        supports = sum(centroid_count(int(counts[c]), rule.centroids) for c in dataset.classes)
    else:
        supports = rule.shots * len(dataset.classes)
    available = supports if trains_on_supports(supports, len(train_rows)) else len(train_rows)
    if needed <= available:
        return
    param = (
        "index_dim"
        if needed == spec.index_dim
        else "nlist"
        if spec.nlist and needed == POINTS_PER_CENTROID * spec.nlist
        else "index"
    )
    value = {"index_dim": spec.index_dim, "nlist": spec.nlist, "index": spec.index}[param]
    raise ConfigError(
        param,
        f"{{{param}}} {value} needs {needed} vectors to train the index on, but this run has {available} "
        "(its training images, or its supports if more)",
    )
