"""What ``auto`` (an option left unset) picks for a training, and why: the one place those choices are made.

=================  ==========================================================  =====================================
option             ``auto`` picks                                              why (docs/results.md)
=================  ==========================================================  =====================================
``augmentation``   ``objects`` on photographed things (``OBJECT_DATASETS``),   mirrors and crops help on clothes;
                   ``strokes`` otherwise                                       mirrored strokes are other symbols
``loss``           ``triplet`` on a few (< ``CONTRAST_FROM``) classes of       class contrast lost to triplets on
                   strokes with no pool; ``contrast`` beside a pool, with      MNIST 0,1,2, a folder of symbols and
                   ``objects``, or on ``CONTRAST_FROM`` classes or more        one-image enrolment, won elsewhere
``augment``        ``POOL_AUGMENT`` (2) beside a pool on a few classes of      6-7 points on unseen digits; stronger
                   strokes, else 1                                             cost glyphs and clothes 5 points
``m_per_class``    ``POOL_M_PER_CLASS`` (32) beside a pool on a few labelled   the measured pooled run (0.6, MNIST
                   classes of strokes, else ``DEFAULT_M_PER_CLASS`` (64)       0,1,2 + rest): 32 x 8 epochs
``epochs``         ``POOL_EPOCHS`` (8) beside a pool on a few labelled         30 pooled epochs took twice the time
                   classes of strokes, else ``DEFAULT_EPOCHS`` (30); more so   for no better score (issue 30); too
                   that a training takes ``MIN_STEPS`` steps and               few steps on a tiny dataset learn
                   ``STEPS_PER_CLASS`` a training class                        nothing
``batch_size``     m x min(classes, ``MAX_WAYS``); for more than ``MAX_WAYS``  a hand-set 32 x 8 beat the default
                   classes of under ``SMALL_CLASS`` images, ``SMALL_BATCH``    on a user's folder of glyphs
=================  ==========================================================  =====================================

:data:`AUTO` is this table as data (``tests/test_train.py`` checks that every row names an option that exists).
A given option is never overridden. :func:`resolve` makes the choices that need only the dataset and the pool
(objective, strength, batch), :func:`epochs_for` the one that needs the steps of an epoch.
"""

from __future__ import annotations

import math
from dataclasses import replace

from embedder.config import (
    CONTRAST_FROM,
    DEFAULT_EPOCHS,
    DEFAULT_M_PER_CLASS,
    MAX_WAYS,
    MIN_STEPS,
    OBJECT_DATASETS,
    POOL_AUGMENT,
    POOL_EPOCHS,
    POOL_M_PER_CLASS,
    SMALL_BATCH,
    SMALL_CLASS,
    STEPS_PER_CLASS,
    TrainConfig,
)
from embedder.data.dataset import Dataset
from embedder.data.ink import looks_photographed

# (option, what auto picks, why): the table above, for tests and `embed train --help` to read.
AUTO: tuple[tuple[str, str, str], ...] = (
    ("augmentation", "objects on photographed things, strokes otherwise", "mirrored strokes are other symbols"),
    (
        "loss",
        f"triplet on under {CONTRAST_FROM} classes of strokes without a pool, contrast otherwise",
        "triplets won on MNIST 0,1,2, a folder of symbols and enrolment; contrast on the rest",
    ),
    ("augment", f"{POOL_AUGMENT:g} beside a pool on a few classes of strokes, else 1", "6-7 points on unseen digits"),
    (
        "m_per_class",
        f"{POOL_M_PER_CLASS} beside a pool on a few labelled classes of strokes, else {DEFAULT_M_PER_CLASS}",
        "the pooled configuration measured in 0.6",
    ),
    (
        "epochs",
        f"{POOL_EPOCHS} beside a pool on a few classes of strokes, else {DEFAULT_EPOCHS}; {MIN_STEPS}+ steps",
        "30 pooled epochs took twice as long for no better score",
    ),
    (
        "batch_size",
        f"m x min(classes, {MAX_WAYS}); {SMALL_BATCH[0]} x {SMALL_BATCH[1]} for many classes of under {SMALL_CLASS}",
        "a hand-set 32 x 8 beat the default on a folder of glyphs",
    ),
)


def augmentation_for(config: TrainConfig, dataset: Dataset | None = None) -> str:
    """The augmentation preset a training uses: ``objects`` for photographed things, else ``strokes``; for a
    ``folder:`` ``dataset``, whose name says nothing, by its images (:func:`embedder.data.ink.looks_photographed`)."""
    if config.augmentation != "auto":
        return config.augmentation
    if config.dataset in OBJECT_DATASETS:
        return "objects"
    folder = dataset is not None and dataset.name.startswith("folder:")
    return "objects" if folder and looks_photographed(dataset.train_images) else "strokes"


def few_stroke_classes(config: TrainConfig) -> bool:
    """A few classes of strokes (handwriting: MNIST 0,1,2, a small folder of symbols), where the designs chosen
    by ``auto`` differ from the others'."""
    return augmentation_for(config) == "strokes" and len(config.classes) < CONTRAST_FROM


def loss_for(config: TrainConfig, pooled: bool) -> str:
    """The objective: triplets on a few classes of strokes without a pool, class contrast otherwise."""
    if config.loss != "auto":
        return config.loss
    return "triplet" if few_stroke_classes(config) and not pooled else "contrast"


def augment_for(config: TrainConfig, pooled: bool) -> float:
    """The augmentation's strength: :data:`~embedder.config.POOL_AUGMENT` beside a pool on a few classes of
    strokes, else 1."""
    if config.augment is not None:
        return config.augment
    return POOL_AUGMENT if pooled and few_stroke_classes(config) else 1.0


def pooled_schedule(config: TrainConfig, pooled: bool) -> bool:
    """Whether ``auto`` gives the measured pooled schedule (m 32, 8 epochs): labelled classes, a few, of strokes,
    beside a pool. A training on a pool alone keeps the strict one (its batch is 2 x m of pool images)."""
    return pooled and bool(config.classes) and few_stroke_classes(config)


def m_for(config: TrainConfig, pooled: bool) -> int:
    """Images of each class in a batch: :data:`~embedder.config.POOL_M_PER_CLASS` for the pooled schedule, else
    :data:`~embedder.config.DEFAULT_M_PER_CLASS`."""
    if config.m_per_class is not None:
        return config.m_per_class
    return POOL_M_PER_CLASS if pooled_schedule(config, pooled) else DEFAULT_M_PER_CLASS


def epochs_for(config: TrainConfig, pooled: bool, steps_per_epoch: int) -> int:
    """Passes over the data: :data:`~embedder.config.POOL_EPOCHS` for the pooled schedule, else
    :data:`~embedder.config.DEFAULT_EPOCHS`; more where an epoch is short, so that the training takes
    :data:`~embedder.config.MIN_STEPS` steps and :data:`~embedder.config.STEPS_PER_CLASS` per class."""
    if config.epochs is not None:
        return config.epochs
    base = POOL_EPOCHS if pooled_schedule(config, pooled) else DEFAULT_EPOCHS
    least = max(MIN_STEPS, STEPS_PER_CLASS * len(config.classes))
    return max(base, math.ceil(least / steps_per_epoch))


def batch_rule(counts: list[int], config: TrainConfig) -> tuple[list[int], int, int | None]:
    """:func:`embedder.data.sampling.batch_shape`'s arguments, for training classes of ``counts`` images: many small
    classes (a user's folder) get :data:`~embedder.config.SMALL_BATCH` by default."""
    m = config.m_per_class if config.m_per_class is not None else DEFAULT_M_PER_CLASS
    if config.batch_size is None and len(counts) > MAX_WAYS and min(counts) < SMALL_CLASS:
        ways, small_m = SMALL_BATCH
        return counts, min(small_m, m), small_m * min(ways, len(counts))
    return counts, m, config.batch_size


def resolve(config: TrainConfig, pooled: bool, dataset: Dataset | None = None) -> TrainConfig:
    """``config`` with the augmentation, the objective, the strength and the images per class chosen (``epochs``
    waits for the steps of an epoch: :func:`epochs_for`)."""
    config = replace(config, augmentation=augmentation_for(config, dataset))  # saved with the options
    return replace(
        config,
        loss=loss_for(config, pooled),
        augment=augment_for(config, pooled),
        m_per_class=m_for(config, pooled),
    )
