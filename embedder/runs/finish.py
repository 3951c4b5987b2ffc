"""The end of a training: a run's index, its metadata, its threshold, and the one commit that saves them.

Training (:mod:`embedder.training.trainer`) hands over the trained, centred embedder and what it learned on;
this module builds the support index (:func:`embedder.index.build.build_support_index`), calibrates the
open-set threshold on the held-out images, and commits model, centring, index and metadata together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.pool import Pool
from embedder.fewshot.classifiers import make_classifier
from embedder.index.build import build_support_index
from embedder.index.supports import describe_rule
from embedder.models.embedder import Embedder
from embedder.runs.calibration import calibrate_index, folder_impostors
from embedder.runs.enrolment import training_records
from embedder.runs.pool import describe_pool, pool_commit
from embedder.runs.pool_files import settled_classes
from embedder.runs.run import run_files
from embedder.runs.store import RunDir, sha256
from embedder.version import __version__


@dataclass(frozen=True)
class FinishedTraining:
    embedder: Embedder  # trained and centred
    dataset: Dataset
    config: TrainConfig
    images: torch.Tensor  # the training classes' training images (the held-out ones apart)
    held_out: np.ndarray  # train-split rows kept for the open-set threshold
    training: dict[str, Any]  # normalization, device, processes, steps_per_epoch, curve, train_seconds, held_out
    pool: Pool | None = None  # the unlabelled pool it trained beside: kept for inference (embedder.runs.pool)


def finish_run(store: RunDir, done: FinishedTraining, fresh: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Index every class, calibrate, and commit the run in one step: the previous run is replaced whole, or
    not at all. Returns the run's metadata."""
    index, support_rows = build_support_index(
        done.embedder, done.dataset, done.config.index_rule, done.images, done.held_out
    )
    metadata = run_metadata(done, index.describe(), support_rows)
    metadata["index"]["classes"] = training_records(index, done.dataset.class_names)
    files = run_files(done.embedder, index)
    classifier = None
    if done.pool is not None:  # a pooled run decides with its pool from the start, calibrated as it decides
        extra, metadata, built = pool_commit(
            done.embedder, done.dataset, done.config, done.pool, support_rows, metadata, sha256(files["model"])
        )
        files.update(extra)
        options = built.classifier_options(settled_classes(metadata))
        classifier = make_classifier("pool", done.embedder, index, **options)
        log(describe_pool(metadata["pool"]))
    impostors = folder_impostors(done.dataset, log)  # a folder dataset's unknown/: no class's images
    calibration = calibrate_index(
        done.embedder, index, done.dataset, done.config, support_rows, log, impostors, classifier
    )
    metadata["open_set"] = calibration.as_dict() if calibration else None
    store.commit(files, run=metadata, fresh=fresh)
    return metadata


def run_metadata(done: FinishedTraining, faiss_name: str, support_rows: np.ndarray) -> dict[str, Any]:
    """What ``run.json`` says of a trained run: versions, data, options, the curve and the index rule."""
    config, dataset = done.config, done.dataset
    return {
        "tripletshot_version": __version__,
        "torch_version": torch.__version__,
        "dataset": config.dataset,
        "data_root": str(dataset.root.resolve()) if dataset.root else None,
        "dataset_classes": dataset.classes,
        "class_names": list(dataset.class_names),
        "classes": config.classes,  # trained on; the validation classes are not among them
        "val_classes": list(config.val_classes or []),
        "embedding_dim": config.embedding_dim,
        "width": config.width,
        "seed": config.seed,
        "options": asdict(config),
        **done.training,
        "index": {
            "shots": config.shots,
            "centroids": None if config.shots else config.centroids,
            "rule": describe_rule(config.shots, config.centroids),
            "method": config.method,
            "support_rows": support_rows.tolist(),
            "held_out_rows": dataset.held_out.tolist() if dataset.held_out is not None else None,
            "faiss": faiss_name,  # the spec itself is in the index file and in options
        },
    }
