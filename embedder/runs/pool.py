"""A run's unlabelled pool at inference: ``embed pool`` (:func:`set_pool`), what a pooled training keeps
(:func:`pool_commit`), and the check that decides how the run's classifier uses it
(:func:`embedder.fewshot.pool.choose_refinement` on the run's own held-out images).

The file itself is :mod:`embedder.runs.pool_files`. ``run.json``'s ``pool`` entry says where the pool came from,
what the check decided and why, and which network embedded it: a training over the run drops the pool
(:data:`embedder.runs.store.BELONGS_TO_MODEL`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.pool import Pool, load_pool
from embedder.data.sampling import validation_split
from embedder.data.sources import NO_POOL
from embedder.errors import ConfigError
from embedder.fewshot.classifiers import make_classifier
from embedder.fewshot.pool import choose_refinement, summarise_pool
from embedder.models.embedder import Embedder
from embedder.runs.calibration import CHANGES, calibrate_index, folder_impostors
from embedder.runs.pool_files import POOL_METHOD, ROLE, RunPool, settled_classes
from embedder.runs.run import Run, run_config, run_for_change

ANCHOR_IMAGES = 1000  # of each trained class, at most: its mean needs no more
CHECK_IMAGES = 300  # held-out images of each class the check plays episodes with, at most


def anchors_for(embedder: Embedder, dataset: Dataset, config: TrainConfig, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Each trained class's unit mean embedding, from up to :data:`ANCHOR_IMAGES` of its training images."""
    train_rows, _ = validation_split(dataset, config.classes, config.val_fraction, config.seed)
    labels, rng = dataset.train_labels.numpy(), np.random.default_rng(seed)
    classes, means = [], []
    for c in config.classes:
        rows = train_rows[labels[train_rows] == c]
        if len(rows):
            chosen = np.sort(rng.choice(rows, min(ANCHOR_IMAGES, len(rows)), replace=False))
            means.append(embedder.embed(dataset.train_images[chosen]).mean(axis=0))
            classes.append(c)
    if not means:
        return np.empty(0, np.int64), np.empty((0, embedder.dim), np.float32)
    vectors = np.stack(means)
    return np.asarray(classes, np.int64), (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def class_mass(dataset: Dataset, config: TrainConfig) -> float:
    """Images of a new class the check assumes the pool holds: as many as a trained class had (the median)."""
    train_rows, _ = validation_split(dataset, config.classes, config.val_fraction, config.seed)
    counts = np.unique(dataset.train_labels.numpy()[train_rows], return_counts=True)[1]
    return float(np.median(counts)) if len(counts) else 1.0


def check_images(
    embedder: Embedder, dataset: Dataset, config: TrainConfig, support_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled images the check plays one-shot episodes with: the trained classes' held-out images (not
    supports) and the validation classes' images, which no training saw, up to :data:`CHECK_IMAGES` a class."""
    labels = dataset.train_labels.numpy()
    _, held = validation_split(dataset, config.classes, config.val_fraction, config.seed)
    unseen = np.flatnonzero(np.isin(labels, config.val_classes or []))
    rows = np.concatenate([held[~np.isin(held, support_rows)], unseen])
    rng = np.random.default_rng(config.seed)
    kept = [np.sort(rng.permutation(rows[labels[rows] == c])[:CHECK_IMAGES]) for c in np.unique(labels[rows])]
    rows = np.concatenate(kept) if kept else np.empty(0, np.int64)
    if not len(rows):
        return np.empty((0, embedder.dim), np.float32), np.empty(0, np.int64)
    return embedder.embed(dataset.train_images[rows]), labels[rows]


def build_pool(
    embedder: Embedder, dataset: Dataset, config: TrainConfig, pool: Pool, support_rows: np.ndarray
) -> RunPool:
    """``pool`` embedded and summarised, the trained classes' anchors, and the check's decision."""
    points = summarise_pool(embedder.embed(pool.images), seed=config.seed)
    thumbnails = pool.images[torch.from_numpy(points.members)].numpy().astype(np.uint8)
    anchors = anchors_for(embedder, dataset, config)
    held = check_images(embedder, dataset, config, support_rows)
    what = "the run's held-out labelled images"
    decision = choose_refinement(held, anchors, points, what, class_mass(dataset, config))
    return RunPool(points, anchors, thumbnails, decision)


def pool_entry(pool: Pool, built: RunPool, data: bytes, model_sha256: str, method_before: str) -> dict[str, Any]:
    """``run.json``'s ``pool`` entry: the source, the size, the decision and the network that embedded it."""
    return {
        "source": pool.source,
        "description": pool.describe(),
        "images": len(pool.images),
        "points": len(built.points.vectors),
        "bytes": len(data),
        "model_sha256": model_sha256,
        "anchors": built.anchors[0].tolist(),
        "decision": built.decision.as_dict(),
        "method_before": method_before,
    }


def pool_commit(
    embedder: Embedder, dataset: Dataset, config: TrainConfig, pool: Pool, support_rows: np.ndarray,
    metadata: dict[str, Any], model_sha256: str,
) -> tuple[dict[str, bytes], dict[str, Any], RunPool]:  # fmt: skip
    """The pool file and the run metadata that names it, for one commit (the run's method becomes ``pool``), and
    the pool as the classifier takes it."""
    built = build_pool(embedder, dataset, config, pool, support_rows)
    data, metadata = built.to_bytes(), copy.deepcopy(metadata)
    previous = metadata["index"]["method"]
    before = previous if previous != POOL_METHOD else (metadata.get("pool") or {}).get("method_before", "nn")
    metadata["pool"] = pool_entry(pool, built, data, model_sha256, before)
    metadata["index"]["method"] = POOL_METHOD
    return {ROLE: data}, metadata, built


def set_pool(
    run_dir: str | os.PathLike, value: str, data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu", log: Callable[[str], None] = print,
) -> dict[str, Any] | None:  # fmt: skip
    """Give the run in ``run_dir`` a pool (``rest``, or a folder of images), embedded by its network and checked
    on its held-out images; ``none`` takes it away. The open-set threshold is fitted again to what then decides.
    Returns the run's new ``pool`` entry (None for ``none``)."""
    with run_for_change(run_dir, device) as (store, run):
        if value == NO_POOL and not run.has_file(ROLE):
            raise ConfigError("pool", f"{run_dir} has no pool to take away")
        metadata = copy.deepcopy(run.metadata)
        dataset = run.load_dataset(data_dir)
        config = run_config(metadata, unlabelled=value, data_dir=str(data_dir) if data_dir else None)
        support_rows = np.asarray(metadata["index"].get("support_rows", []), dtype=np.int64)
        if value == NO_POOL:
            metadata["index"]["method"] = (metadata.pop("pool", None) or {}).get("method_before", "nn")
            files, drop, built = {}, (ROLE,), None
        else:
            sha = run.manifest["files"]["model"]["sha256"]
            pool = _load(config, dataset, value)
            files, metadata, built = pool_commit(run.embedder, dataset, config, pool, support_rows, metadata, sha)
            drop = ()
        trained = run_config(run.metadata)  # the training's own pool decides which images were never seen
        metadata["open_set"] = _refit(run, built, metadata, dataset, trained, support_rows, log)
        store.commit(files, run=metadata, drop=drop)
    return metadata.get("pool")


def _load(config: TrainConfig, dataset: Dataset, value: str) -> Pool:
    try:
        pool = load_pool(config, dataset)
    except ConfigError as exc:  # the training option's message, for this command's argument
        raise ConfigError("pool", exc.template.replace("{unlabelled}", "pool")) from None
    if pool is None:
        raise ConfigError("pool", f"pool {value!r} names no pool: give rest, a folder of images or none")
    return pool


def _refit(
    run: Run, built: RunPool | None, metadata: dict[str, Any], dataset: Dataset, config: TrainConfig,
    support_rows: np.ndarray, log: Callable[[str], None],
) -> dict[str, Any] | None:  # fmt: skip
    """The open-set calibration fitted again to the classifier the run now decides with (None if it had none), on
    the run's own held-out images and a folder dataset's ``unknown/`` (impostors once given to ``embed calibrate
    --impostors`` are not read again)."""
    if not metadata.get("open_set"):
        return metadata.get("open_set")
    method = metadata["index"]["method"]
    options = built.classifier_options(settled_classes(metadata)) if built is not None else {}
    classifier = make_classifier(method, run.embedder, run.index, **options)
    far = metadata["open_set"].get("far", config.far)
    impostors = folder_impostors(dataset, log)
    fitted = calibrate_index(run.embedder, run.index, dataset, replace(config, far=far), support_rows, log,
                             impostors, classifier)  # fmt: skip
    metadata["index"].pop(CHANGES, None)  # fitted to the index as it is now
    return fitted.as_dict() if fitted is not None else None


def describe_pool(entry: dict[str, Any] | None) -> str:
    """The run's pool in two lines: what it holds and how it is kept, then what the check decided and why."""
    if not entry:
        return "no pool: `embed pool rest|PATH` gives the run one"
    kept = (
        f"kept whole ({entry['points']:,} points)"
        if entry["points"] == entry["images"]
        else f"kept as {entry['points']:,} weighted k-means centroids"
    )
    return f"pool: {entry['description']}, {kept}, {entry['bytes'] / 1e6:.1f} MB\n{entry['decision']['reason']}"
