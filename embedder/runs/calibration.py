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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.config import REST_POOL, TrainConfig, check_far
from embedder.data.dataset import Dataset
from embedder.data.pool import pool_rows
from embedder.data.sampling import validation_split
from embedder.data.sources import UNKNOWN_FOLDER
from embedder.errors import ConfigError, RunError
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.fewshot.openset import Calibration, CalibrationImages, calibrate
from embedder.index.support_index import SupportIndex
from embedder.models.embedder import Embedder
from embedder.runs.run import Run, run_config, run_for_change

UNSEEN_IMAGES = 100  # at least this many of each class not trained on: its held-out rate is a share of them
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
    per_class = max(int(np.median(np.unique(labels[held_out], return_counts=True)[1])), UNSEEN_IMAGES)
    rng, others = np.random.default_rng(config.seed), []
    trained_on = np.zeros(len(labels), dtype=bool)  # unlabelled: impostors are images training never saw
    if config.unlabelled == REST_POOL:
        trained_on[pool_rows(dataset, config)] = True
    for c in sorted(set(indexed) - set(config.classes)):
        rows = np.flatnonzero((labels == c) & ~trained_on & ~np.isin(np.arange(len(labels)), support_rows))
        others.append(np.sort(rng.choice(rows, min(per_class, len(rows)), replace=False)))
    return held_out, np.concatenate(others) if others else np.empty(0, np.int64)


def calibration_images(
    embedder: Embedder,
    dataset: Dataset,
    config: TrainConfig,
    support_rows: np.ndarray,
    indexed: list[int],
    impostors: dict[str, torch.Tensor] | None = None,
) -> tuple[CalibrationImages, np.ndarray, np.ndarray]:
    """What calibration scores (:func:`calibration_rows`' images embedded, and ``impostors``, groups of images of
    no indexed class), and the rows of each kind."""
    held_out, others = calibration_rows(dataset, config, support_rows, indexed)
    rows, labels = np.concatenate([held_out, others]), dataset.train_labels.numpy()
    user = {name: embedder.embed(images) for name, images in (impostors or {}).items()}
    embedded = embedder.embed(dataset.train_images[rows]) if len(rows) else np.empty((0, embedder.dim), np.float32)
    return CalibrationImages(embedded, labels[rows], list(config.classes), user), held_out, others


def calibrate_index(
    embedder: Embedder,
    index: SupportIndex,
    dataset: Dataset,
    config: TrainConfig,
    support_rows: np.ndarray,
    log: Callable[[str], None] = print,
    impostors: dict[str, torch.Tensor] | None = None,
    classifier: FewShotClassifier | None = None,
) -> Calibration | None:
    """The open-set rule for ``config.far`` from the held-out images (and ``impostors``, groups of images of no
    indexed class), as ``classifier`` decides (the run's: ``config.method`` over ``index`` by default); None (and
    a note) when there are none."""
    images, held_out, others = calibration_images(embedder, dataset, config, support_rows, index.classes, impostors)
    if len(held_out) == 0:
        why = "val_fraction 0" if config.classes else "no labelled classes"
        log(f"no held-out images ({why}): the run has no open-set threshold")
        return None
    classifier = classifier if classifier is not None else make_classifier(config.method, index=index)
    calibration = calibrate(classifier, images, config.far)
    untrained = len(set(images.labels[len(held_out) :].tolist()))
    user = sum(len(e) for e in images.user.values())
    log(
        f"{calibration.statement()}; calibrated from {len(held_out)} held-out images of the trained classes"
        + (f" and {len(others)} images of the {untrained} indexed classes it did not train on" if untrained else "")
        + (f" and {user} of the user's impostors" if user else "")
        + f"; {calibration.known_statement()}"
    )
    return calibration


def impostor_groups(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The user's impostors under ``path``: each folder holding images one group (a class of its own, left out
    of the fit in turn), ``path``'s own files one more."""
    from embedder.data.folders import class_folders, load_images

    if not Path(path).is_dir():
        raise ConfigError("impostors", f"{{impostors}} {path}: not a folder")
    groups = {f"impostors:{name}": load_images(files).images for name, files in class_folders(path).items()}
    groups = {name: images for name, images in groups.items() if len(images)}
    if not groups:
        raise ConfigError("impostors", f"{{impostors}} {path}: no image it could read")
    return groups


def folder_impostors(dataset: Dataset, log: Callable[[str], None] = print) -> dict[str, torch.Tensor] | None:
    """A ``folder:PATH`` dataset's ``PATH/unknown/`` as impostor groups (:func:`impostor_groups`), or None when it
    has none; an ``unknown/`` with no readable image is said and left out."""
    if not dataset.name.startswith("folder:"):
        return None
    folder = Path(dataset.name[len("folder:") :]) / UNKNOWN_FOLDER
    if not folder.is_dir():
        return None
    try:
        return impostor_groups(folder)
    except ConfigError:
        log(f"warning: {folder} holds no image it could read: the threshold is fitted without it")
        return None


def recalibrate(
    run_dir: str | os.PathLike,
    far: float = TrainConfig.far,
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
    impostors: str | os.PathLike | None = None,
) -> Calibration:
    """Fit the run's rule again, for ``far``, on its index as it is now (enrolled classes included), with the
    images under ``impostors`` (:func:`impostor_groups`) as impostors beside its own."""
    check_far(far)
    given = impostor_groups(impostors) if impostors is not None else None
    with run_for_change(run_dir, device) as (store, run):
        config = run_config(run.metadata, far=far, method=run.metadata["index"]["method"])
        support_rows = np.asarray(run.metadata["index"].get("support_rows", []), dtype=np.int64)
        dataset = run.load_dataset(data_dir)
        user = {**(folder_impostors(dataset, log) or {}), **(given or {})}
        classifier = run.classifier()  # what predict decides with: the pool's prototypes too
        calibration = calibrate_index(run.embedder, run.index, dataset, config, support_rows, log, user, classifier)
        if calibration is None:
            raise RunError(f"{run_dir} was trained with no held-out images (val_fraction 0): nothing to calibrate on")
        metadata = copy.deepcopy(run.metadata)
        metadata["open_set"] = calibration.as_dict()
        metadata["index"].pop(CHANGES, None)  # fitted to the index as it is now
        store.commit({}, run=metadata)
    return calibration
