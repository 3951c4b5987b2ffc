"""A run's open-set threshold: fitted at the end of training, or again later for another false-accept rate.

The genuine side is the validation split of the training classes (:func:`embedder.data.sampling.split_validation`,
reproducible from the run's options), less any image that is itself a support. The impostors are those images
and as many of each indexed class the network did *not* train on (the unseen classes a run indexes from the
dataset's labels, validation classes): an unknown in use is a class the network never saw, and the network packs
its training classes tighter than others, so a threshold fitted on the training classes alone accepted 14-20% of
unseen digits at a 1% rate (docs/results.md). Every class weighs the same. Under ``--unlabelled rest`` the
impostors come from the share of each class that the pool leaves out (:func:`embedder.data.pool.pool_rows`).
All are scored against the run's index as it is: :mod:`embedder.fewshot.openset` turns their genuine and
impostor distances into the threshold.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from embedder.config import REST_POOL, TrainConfig, check_far
from embedder.data.dataset import Dataset
from embedder.data.pool import pool_rows
from embedder.data.sampling import validation_split
from embedder.errors import RunError
from embedder.fewshot.classifiers import make_classifier
from embedder.fewshot.openset import Calibration, calibrate, genuine_and_impostor
from embedder.index.support_index import SupportIndex
from embedder.models.embedder import Embedder
from embedder.runs.run import Run, run_for_change

CHANGES = "changes_since_calibration"  # in a run's index metadata: what enrol and forget did after the threshold


def threshold_note(metadata: dict[str, Any]) -> str | None:
    """A sentence saying that the run's threshold was fitted before the index changed, or None if it was not (or
    the run has no threshold). ``enrol`` and ``forget`` keep the threshold; ``recalibrate`` refits it."""
    changes, stored = metadata.get("index", {}).get(CHANGES), metadata.get("open_set")
    if not changes or not stored:
        return None
    shown = "; ".join(changes[-3:]) + ("; ..." if len(changes) > 3 else "")
    count = f"{len(changes)} change{'s' if len(changes) > 1 else ''}"
    return (
        f"the open-set threshold {stored['threshold']:.3f} predates {count} to the index ({shown}): "
        "`embed calibrate` fits it to the index as it is now"
    )


def run_calibration(run: Run) -> Calibration | None:
    """The run's open-set calibration; None for a run trained without one."""
    stored = run.metadata.get("open_set")
    if stored is None:
        return None
    try:
        return Calibration.from_dict(stored)
    except TypeError:
        raise RunError(f"{run.path}/run.json is damaged: its open_set entry is malformed") from None


def calibration_rows(
    dataset: Dataset, config: TrainConfig, support_rows: np.ndarray, indexed: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Train-split rows: the training classes' held-out images (genuine and impostor), then, for each class of
    ``indexed`` not trained on, as many of its images as a training class holds out (the median; impostor only:
    leaving its class out of the search, its own supports do not count)."""
    _, val_rows = validation_split(dataset, config.classes, config.val_fraction, config.seed)  # the run's stored split
    held_out = val_rows[~np.isin(val_rows, support_rows)]
    labels = dataset.train_labels.numpy()
    if len(held_out) == 0:
        return held_out, held_out
    per_class = int(np.median(np.unique(labels[held_out], return_counts=True)[1]))
    rng, others = np.random.default_rng(config.seed), []
    trained_on = np.zeros(len(labels), dtype=bool)  # unlabelled: impostors are images training never saw
    if config.unlabelled == REST_POOL:
        trained_on[pool_rows(dataset, config)] = True
    for c in sorted(set(indexed) - set(config.classes)):
        rows = np.flatnonzero((labels == c) & ~trained_on)
        others.append(np.sort(rng.choice(rows, min(per_class, len(rows)), replace=False)))
    return held_out, np.concatenate(others) if others else np.empty(0, np.int64)


def calibrate_index(
    embedder: Embedder,
    index: SupportIndex,
    dataset: Dataset,
    config: TrainConfig,
    support_rows: np.ndarray,
    log: Callable[[str], None] = print,
) -> Calibration | None:
    """The threshold for ``config.far`` from the held-out images; None (and a note) when there are none."""
    held_out, others = calibration_rows(dataset, config, support_rows, index.classes)
    if len(held_out) == 0:
        why = "val_fraction 0" if config.classes else "no labelled classes"
        log(f"no held-out images ({why}): the run has no open-set threshold")
        return None
    classifier = make_classifier(config.method, index=index)
    labels = dataset.train_labels.numpy()
    genuine, impostor = genuine_and_impostor(
        classifier, embedder.embed(dataset.train_images[held_out]), labels[held_out]
    )
    if len(others):
        _, unseen = genuine_and_impostor(classifier, embedder.embed(dataset.train_images[others]), labels[others])
        impostor = np.concatenate([impostor, unseen])
    calibration = calibrate(genuine, impostor, config.far)
    untrained = len(set(labels[others].tolist()))
    log(
        f"open set: threshold {calibration.threshold:.3f} for a {config.far:.1%} false-accept rate, from "
        f"{len(genuine)} held-out images of the trained classes ({calibration.true_accept_rate:.1%} of them accepted "
        "as their class)"
        + (f" and {len(others)} images of the {untrained} indexed classes it did not train on" if untrained else
           "; it trained on every indexed class, so no unseen class adds impostors")
    )  # fmt: skip
    return calibration


def recalibrate(
    run_dir: str | os.PathLike,
    far: float = TrainConfig.far,
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
) -> Calibration:
    """Fit the run's threshold again, for ``far``, on its index as it is now (enrolled classes included)."""
    check_far(far)
    with run_for_change(run_dir, device) as (store, run):
        known = {f.name for f in fields(TrainConfig)}
        options = {k: v for k, v in run.metadata.get("options", {}).items() if k in known}
        config = TrainConfig(**{**options, "far": far, "method": run.metadata["index"]["method"]})
        support_rows = np.asarray(run.metadata["index"].get("support_rows", []), dtype=np.int64)
        calibration = calibrate_index(run.embedder, run.index, run.load_dataset(data_dir), config, support_rows, log)
        if calibration is None:
            raise RunError(f"{run_dir} was trained with no held-out images (val_fraction 0): nothing to calibrate on")
        metadata = copy.deepcopy(run.metadata)
        metadata["open_set"] = calibration.as_dict()
        metadata["index"].pop(CHANGES, None)  # fitted to the index as it is now
        store.commit({}, run=metadata)
    return calibration
