"""A trained run: everything ``embed eval`` and ``adder`` need from one training.

The folder's layout, its manifest and its crash-safe writes live in :mod:`embedder.rundir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import DEFAULT_RUN_DIR
from .errors import RunError
from .fewshot import Embedder, FewShotClassifier
from .index import SupportIndex
from .model import EmbeddingNet
from .rundir import MANIFEST_FILE, RunDir, StaleManifest


def read_metadata(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metadata of the run in ``run_dir``, after checking its manifest's format."""
    return RunDir(run_dir).metadata()


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
        """Load a run's model, metadata and support index, checking that they fit together.

        A training that commits a new run while this reads does not break it: the read starts again.
        """
        for _ in range(2):
            try:
                return cls._load_once(run_dir, device)
            except StaleManifest:
                continue  # a training committed meanwhile: read its manifest
        return cls._load_once(run_dir, device)

    @classmethod
    def _load_once(cls, run_dir: str | os.PathLike, device: torch.device | str) -> Run:
        path = Path(run_dir)
        device = torch.device(device)
        store = RunDir(path)
        manifest = store.manifest()  # one read: model and index come from the same commit
        meta = store.metadata(manifest)
        try:
            model = build_model(meta)
            normalization = float(meta["normalization"]["mean"]), float(meta["normalization"]["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{path / MANIFEST_FILE} is damaged: its run metadata lacks {exc}") from None
        state = store.read_tensors("model", manifest)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunError(
                f"{store.file_path('model', manifest)} does not fit the model described in {MANIFEST_FILE}: {first}"
            ) from None
        model.to(device).eval()
        index_bytes = store.read("index", manifest)
        index_path = store.file_path("index", manifest)
        index = SupportIndex.from_bytes(index_bytes, source=str(index_path))
        if index.dim != model.embedding_dim:
            raise RunError(f"{index_path} holds {index.dim}-d vectors but the model embeds to {model.embedding_dim}-d")
        embedder = Embedder(model, *normalization, device)
        return cls(path, meta, embedder, index)

    def classifier(self, method: str | None = None) -> FewShotClassifier:
        """A classifier over this run's saved supports (what ``adder predict`` uses)."""
        return FewShotClassifier(self.embedder, method or self.metadata["index"]["method"], self.index)
