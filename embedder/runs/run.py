"""A trained run: the embedder, its support index and its metadata, as one object.

What a run folder holds and how it is written safely is :mod:`embedder.runs.store`; this module says
which files make a run (:data:`RUN_FILES`) and puts a network, a centring and an index back together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.config import DEFAULT_RUN_DIR, TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.errors import ConfigError, RunError
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.index.support_index import SupportIndex
from embedder.models.embedder import Centering, Embedder
from embedder.models.network import EmbeddingNet
from embedder.runs.index_files import read_index
from embedder.runs.pool_files import POOL_METHOD, RunPool, read_pool, settled_classes
from embedder.runs.store import MANIFEST_FILE, RunDir, StaleManifest, state_to_bytes

RUN_FILES = ("model", "centering", "index")  # committed together when a training completes


def read_metadata(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metadata of the run in ``run_dir``, after checking its manifest's format."""
    return RunDir(run_dir).metadata()


def run_config(metadata: dict[str, Any], **changes: Any) -> TrainConfig:
    """A run's training options as a :class:`TrainConfig`, with ``changes`` (options of other versions left out)."""
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{**{k: v for k, v in metadata.get("options", {}).items() if k in known}, **changes})


def run_files(embedder: Embedder, index: SupportIndex) -> dict[str, bytes]:
    """The bytes of the files that make a run, by role, for :meth:`RunDir.commit`."""
    return {
        "model": state_to_bytes(embedder.model.state_dict()),
        "centering": state_to_bytes({"mean": embedder.centering.mean.cpu()}),
        "index": index.to_bytes(),
    }


def trained_on(metadata: dict[str, Any]) -> str:
    """``trained on labels of 0,1,2 and on 37,240 unlabelled images (classes unknown)``, from a run's metadata:
    the first thing ``embed eval`` and ``embed report`` say, so that strict and pooled figures are never confused."""
    names = metadata.get("class_names") or []
    classes = ",".join(str(names[c]) if 0 <= c < len(names) else str(c) for c in metadata.get("classes", []))
    labels = f"labels of {classes}" if classes else "no labels"
    pool = metadata.get("unlabelled")
    if not pool:
        return f"trained on {labels} only, no unlabelled images"
    return f"trained on {labels} and on {pool['description']}"


@dataclass
class Run:
    path: Path
    metadata: dict[str, Any]
    embedder: Embedder
    index: SupportIndex
    manifest: dict[str, Any]  # run.json as it was read: its file table names the run's other files
    pool: RunPool | None = None  # the unlabelled pool inference uses (embedder.runs.pool), if the run has one
    # One classifier a method, kept: the pool's refinement is computed once and again only when the index changes.
    _classifiers: dict[str, FewShotClassifier] = field(default_factory=dict, repr=False, compare=False)

    @property
    def trained_classes(self) -> list[int]:
        return list(self.metadata["classes"])

    @property
    def trained_on(self) -> str:
        """What the network saw, in words: :func:`trained_on`."""
        return trained_on(self.metadata)

    @classmethod
    def load(cls, run_dir: str | os.PathLike = DEFAULT_RUN_DIR, device: torch.device | str = "cpu") -> Run:
        """Load a run's model, centring, metadata and support index, checking that they fit together.

        A training that commits a new run while this reads does not break it: the read starts again.
        """
        for _ in range(2):
            try:
                return cls._load_once(RunDir(run_dir), torch.device(device))
            except StaleManifest:
                continue  # a training committed meanwhile: read its manifest
        return cls._load_once(RunDir(run_dir), torch.device(device))

    @classmethod
    def _load_once(cls, store: RunDir, device: torch.device) -> Run:
        manifest = store.manifest()  # parsed once; every read below checks against it
        meta = store.metadata(manifest)
        try:
            model = EmbeddingNet(embedding_dim=meta["embedding_dim"], width=meta["width"])
            normalization = (meta["normalization"]["mean"], meta["normalization"]["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{store.path / MANIFEST_FILE} is damaged: its run metadata lacks {exc}") from None
        _load_weights(store, manifest, "model", model)
        centering = Centering(model.embedding_dim)
        _load_weights(store, manifest, "centering", centering)
        index_path = store.file_path("index", manifest)
        index = read_index(store, manifest)  # with the changes enrol and forget kept beside it
        if index.dim != model.embedding_dim:
            raise RunError(f"{index_path} holds {index.dim}-d vectors but the model embeds to {model.embedding_dim}-d")
        index.place(str(device))  # searches on the GPU where faiss-gpu allows it; logs a line where it does not
        embedder = Embedder(model.eval(), *normalization, centering=centering, device=device)
        pool = read_pool(store, manifest, meta, model.embedding_dim)
        return cls(store.path, meta, embedder, index, manifest, pool)

    def class_name(self, label: int) -> str:
        """The name of class ``label`` (``class_names[label]`` in the metadata; the label itself if it has none)."""
        names = self.metadata.get("class_names") or []
        return str(names[label]) if 0 <= label < len(names) else str(label)

    def has_file(self, role: str) -> bool:
        """Whether the run holds a file for ``role`` (``"adder"``, ``"checkpoint"``...)."""
        return role in self.manifest["files"]

    @property
    def method(self) -> str:
        """The run's default method: ``pool`` once the run has a pool (:mod:`embedder.runs.pool`)."""
        return self.metadata["index"]["method"]

    def classifier_options(self, method: str, supports: bool = False) -> dict[str, Any]:
        """What ``method``'s classifier takes from the run: the pool, for ``pool``; with ``supports``, which of the
        run's indexed classes stand as they are (:func:`~embedder.runs.pool_files.settled_classes`)."""
        if method != POOL_METHOD:
            return {}
        if self.pool is None:
            raise ConfigError("method", f"{{method}} pool: {self.path} has no pool (`embed pool rest|PATH` gives one)")
        return self.pool.classifier_options(settled_classes(self.metadata) if supports else None)

    def classifier(self, method: str | None = None) -> FewShotClassifier:
        """A classifier over this run's saved supports (what ``adder predict`` uses); the run's method by default."""
        method = method or self.method
        if method not in self._classifiers:
            options = self.classifier_options(method, supports=True)
            self._classifiers[method] = make_classifier(method, self.embedder, self.index, **options)
        return self._classifiers[method]

    def load_dataset(self, data_dir: str | os.PathLike | None = None) -> Dataset:
        """The dataset this run was trained on, from ``data_dir``, else from where training read it."""
        options, root = self.metadata.get("options", {}), data_dir or self.metadata.get("data_root")
        split = options.get("test_fraction", 0.2)  # a folder: dataset is split again as it was for training
        dataset = load_dataset(self.metadata["dataset"], root, split, options.get("strict", False))
        held_out = self.metadata.get("index", {}).get("held_out_rows")  # the rows its training held out
        if held_out is None:  # a run from before they were stored: drawn again from the seed, as training drew them
            return dataset
        rows = np.asarray(held_out, dtype=np.int64)
        if len(rows) and rows.max() >= len(dataset.train_labels):
            raise RunError(f"{self.path}: the dataset {self.metadata['dataset']} is not the one this run trained on")
        return replace(dataset, held_out=rows)


@contextlib.contextmanager
def run_for_change(run_dir: str | os.PathLike, device: torch.device | str = "cpu") -> Iterator[tuple[RunDir, Run]]:
    """The run in ``run_dir`` read under its lock, with the store to commit the change through, lock still held."""
    store = RunDir(run_dir)
    store.manifest()  # a missing or foreign folder is said as such, before a lock file is made in it
    with store.lock():
        yield store, Run.load(run_dir, device)


def _load_weights(store: RunDir, manifest: dict[str, Any], role: str, module: torch.nn.Module) -> None:
    state = store.read_tensors(role, manifest)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(
            f"{store.file_path(role, manifest)} does not fit the {role} described in {MANIFEST_FILE}: {first}"
        ) from None
