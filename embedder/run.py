"""A run directory: everything ``embed eval`` and ``adder`` need from one training.

run.json      metadata: dataset, trained classes, options, training curve, versions
model.pt      the embedder's weights (a state dict, loaded with ``weights_only=True``)
index.npz     the faiss support index with its labels (no pickle)
checkpoint.pt model, optimizer and epoch, for ``embed train --resume``
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .artifacts import load_tensors, read_json
from .errors import RunError
from .fewshot import Embedder, FewShotClassifier
from .index import SupportIndex
from .model import EmbeddingNet

FORMAT_VERSION = 1
META_FILE = "run.json"
MODEL_FILE = "model.pt"
INDEX_FILE = "index.npz"
CHECKPOINT_FILE = "checkpoint.pt"
DEFAULT_RUN_DIR = "runs/latest"


def read_metadata(run_dir: str | os.PathLike) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunError(f"no run at {run_dir}: train one first with `embed train`")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a directory")
    return read_metadata_file(run_dir / META_FILE)


def read_metadata_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RunError(f"{path.parent} is not a tripletshot run (no {META_FILE}): train one with `embed train`")
    meta = read_json(path)
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise RunError(f"{path} is not tripletshot run metadata")
    if meta["format_version"] != FORMAT_VERSION:
        raise RunError(
            f"{path} has format version {meta['format_version']}; this tripletshot reads version {FORMAT_VERSION}"
        )
    return meta


def build_model(meta: dict[str, Any]) -> EmbeddingNet:
    return EmbeddingNet(embedding_dim=meta["embedding_dim"], width=meta["width"])


@dataclass
class Run:
    path: Path
    metadata: dict[str, Any]
    embedder: Embedder
    index: SupportIndex

    @property
    def trained_classes(self) -> list[int]:
        return list(self.metadata["classes"])

    @classmethod
    def load(cls, run_dir: str | os.PathLike = DEFAULT_RUN_DIR, device: torch.device | str = "cpu") -> Run:
        """Load a run's model, metadata and support index, checking that they fit together."""
        path = Path(run_dir)
        device = torch.device(device)
        meta = read_metadata(path)
        model = build_model(meta)
        state = load_tensors(path / MODEL_FILE)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunError(f"{path / MODEL_FILE} does not fit the model in {META_FILE}: {first}") from None
        model.to(device).eval()
        index = SupportIndex.load(path / INDEX_FILE)
        if index.dim != model.embedding_dim:
            raise RunError(
                f"{path / INDEX_FILE} holds {index.dim}-d vectors but the model embeds to {model.embedding_dim}-d"
            )
        embedder = Embedder(model, meta["normalization"]["mean"], meta["normalization"]["std"], device)
        return cls(path, meta, embedder, index)

    def classifier(self, method: str | None = None) -> FewShotClassifier:
        """A classifier over this run's saved supports (what ``adder predict`` uses)."""
        return FewShotClassifier(self.embedder, method or self.metadata["index"]["method"], self.index)
