"""tripletshot's embedder: a Siamese CNN trained with triplet loss, extended to unseen classes by faiss.

Names are imported on first use (PEP 562), so ``import embedder`` stays cheap for the CLI:
torch, faiss and pytorch-metric-learning load only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

_EXPORTS = {
    "DATASETS": "data",
    "Dataset": "data",
    "load_dataset": "data",
    "parse_classes": "classes",
    "resolve_classes": "classes",
    "resolve_device": "devices",
    "TripletshotError": "errors",
    "ConfigError": "errors",
    "DeviceError": "errors",
    "DataNotFoundError": "errors",
    "RunError": "errors",
    "RunNotFoundError": "errors",
    "ImageError": "errors",
    "EmptyIndexError": "errors",
    "ClassNotFoundError": "errors",
    "UnknownImageError": "errors",
    "Interrupted": "interrupt",
    "EmbeddingNet": "model",
    "Centering": "embedding",
    "Embedder": "embedding",
    "SupportIndex": "index",
    "FewShotClassifier": "fewshot",
    "NearestNeighbor": "fewshot",
    "Prototype": "fewshot",
    "CLASSIFIERS": "fewshot",
    "Run": "run",
    "TrainConfig": "config",
    "train": "training",
    "resume": "training",
    "evaluate_run": "evaluation",
    "evaluate_episodes": "evaluation",
    "write_report": "report",
    "load_image": "images",
    "enrol": "enrolment",
    "forget": "enrolment",
    "indexed_classes": "enrolment",
    "predict": "prediction",
    "PredictConfig": "config",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
