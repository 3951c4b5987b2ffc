"""tripletshot's embedder: a Siamese CNN (triplet loss or class contrast), extended to unseen classes by faiss.

Sub-packages, one concept each: ``data`` (datasets, folders, images, splits), ``models`` (the network and
the embedder), ``losses`` (triplet loss, class and instance contrast, miners, reducer), ``training`` (the loop,
checkpoints, DDP), ``index`` (the faiss support index), ``fewshot`` (classifiers and the open-set rule),
``runs`` (a saved run and what is done to it: enrol, forget, predict, calibrate, export) and ``evaluation``
(episodes, metrics, the report). ``docs/architecture.md`` draws the arrows between them.

Names are imported on first use (PEP 562), so ``import embedder`` stays cheap for the CLI:
torch, faiss and pytorch-metric-learning load only when something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedder.utils.lazy import lazy_exports
from embedder.version import __version__

if TYPE_CHECKING:  # what editors and type checkers see; at run time each name loads on first use
    from embedder.config import PredictConfig, TrainConfig
    from embedder.data.classes import parse_classes, resolve_classes
    from embedder.data.dataset import Dataset
    from embedder.data.datasets import DATASETS, load_dataset
    from embedder.data.images import load_image
    from embedder.errors import (
        ClassNotFoundError,
        ConfigError,
        DataNotFoundError,
        DeviceError,
        EmptyIndexError,
        ImageError,
        RunError,
        RunNotFoundError,
        TripletshotError,
        UnknownImageError,
    )
    from embedder.evaluation.episodes import evaluate_episodes, evaluate_run
    from embedder.evaluation.report import write_report
    from embedder.fewshot.classifiers import CLASSIFIERS, FewShotClassifier, NearestNeighbor, PoolRefined, Prototype
    from embedder.index.support_index import SupportIndex
    from embedder.models.embedder import Centering, Embedder
    from embedder.models.network import EmbeddingNet
    from embedder.runs.enrolment import enrol, forget, indexed_classes
    from embedder.runs.pool import set_pool
    from embedder.runs.prediction import predict
    from embedder.runs.run import Run
    from embedder.training.devices import resolve_device
    from embedder.training.interrupt import Interrupted
    from embedder.training.trainer import resume, train

_EXPORTS = {
    "DATASETS": ".data.datasets",
    "Dataset": ".data.dataset",
    "load_dataset": ".data.datasets",
    "parse_classes": ".data.classes",
    "resolve_classes": ".data.classes",
    "resolve_device": ".training.devices",
    "TripletshotError": ".errors",
    "ConfigError": ".errors",
    "DeviceError": ".errors",
    "DataNotFoundError": ".errors",
    "RunError": ".errors",
    "RunNotFoundError": ".errors",
    "ImageError": ".errors",
    "EmptyIndexError": ".errors",
    "ClassNotFoundError": ".errors",
    "UnknownImageError": ".errors",
    "Interrupted": ".training.interrupt",
    "EmbeddingNet": ".models.network",
    "Centering": ".models.embedder",
    "Embedder": ".models.embedder",
    "SupportIndex": ".index.support_index",
    "FewShotClassifier": ".fewshot.classifiers",
    "NearestNeighbor": ".fewshot.classifiers",
    "Prototype": ".fewshot.classifiers",
    "PoolRefined": ".fewshot.classifiers",
    "set_pool": ".runs.pool",
    "CLASSIFIERS": ".fewshot.classifiers",
    "Run": ".runs.run",
    "TrainConfig": ".config",
    "train": ".training.trainer",
    "resume": ".training.trainer",
    "evaluate_run": ".evaluation.episodes",
    "evaluate_episodes": ".evaluation.episodes",
    "write_report": ".evaluation.report",
    "load_image": ".data.images",
    "enrol": ".runs.enrolment",
    "forget": ".runs.enrolment",
    "indexed_classes": ".runs.enrolment",
    "predict": ".runs.prediction",
    "PredictConfig": ".config",
}
__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "parse_classes",
    "resolve_classes",
    "resolve_device",
    "TripletshotError",
    "ConfigError",
    "DeviceError",
    "DataNotFoundError",
    "RunError",
    "RunNotFoundError",
    "ImageError",
    "EmptyIndexError",
    "ClassNotFoundError",
    "UnknownImageError",
    "Interrupted",
    "EmbeddingNet",
    "Centering",
    "Embedder",
    "SupportIndex",
    "FewShotClassifier",
    "NearestNeighbor",
    "Prototype",
    "PoolRefined",
    "CLASSIFIERS",
    "Run",
    "TrainConfig",
    "train",
    "resume",
    "evaluate_run",
    "evaluate_episodes",
    "write_report",
    "load_image",
    "enrol",
    "forget",
    "set_pool",
    "indexed_classes",
    "predict",
    "PredictConfig",
    "__version__",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
