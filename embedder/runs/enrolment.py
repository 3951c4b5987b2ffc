"""The classes in a run's index, by name: enrol images under a name, forget a class, list what is there.

Labels are data, never paths. The index stores int64 labels; the run's metadata maps them to names
(``class_names``: label ``i`` is ``class_names[i]``), so a new name takes the next label, and a forgotten
class keeps its label for when it comes back. The metadata also records, for each class in the index, its
shots, whether it was built in training or enrolled, and when. The weights are never touched: enrolling
embeds the images with the run's embedder and adds them to its faiss index. Each change is one commit of the
index and the metadata, under the run's lock, after reading the run inside that lock.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.data.folders import class_folders, load_images
from embedder.data.labels import check_label
from embedder.errors import ClassNotFoundError, ConfigError, quote
from embedder.index.support_index import SupportIndex
from embedder.runs.calibration import CHANGES
from embedder.runs.index_files import committed, index_files
from embedder.runs.run import Run, run_for_change
from embedder.runs.store import ENROLLED, RunDir


@dataclass(frozen=True)
class IndexedClass:
    """One class of a run's index."""

    label: int
    name: str
    shots: int
    origin: str  # "training" (indexed when the run was trained) or "enrolled"
    added: str | None  # ISO 8601, UTC; None for runs trained before tripletshot recorded it
    updated: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def training_records(index: SupportIndex, names: list[str]) -> list[dict[str, Any]]:
    """The records of the classes a training put in the index (what :func:`indexed_classes` reads back)."""
    labels, counts = np.unique(index.labels, return_counts=True)
    now = _now()
    return [
        IndexedClass(int(c), names[c] if c < len(names) else str(c), int(n), "training", now, now).as_dict()
        for c, n in zip(labels, counts, strict=True)
    ]


def indexed_classes(run: Run) -> list[IndexedClass]:
    """The classes in the run's index, by label: name, shots, origin and when."""
    records = {r["label"]: r for r in run.metadata.get("index", {}).get("classes", [])}
    labels, counts = np.unique(run.index.labels, return_counts=True)
    rows = []
    for label, shots in zip(labels.tolist(), counts.tolist(), strict=True):
        record = records.get(label, {})  # a run trained before records were kept: built in training, time unknown
        origin, added, updated = record.get("origin", "training"), record.get("added"), record.get("updated")
        rows.append(IndexedClass(label, run.class_name(label), shots, origin, added, updated))
    return rows


def _commit(store: RunDir, run: Run, metadata: dict[str, Any], changes: list[str]) -> list[IndexedClass]:
    """Commit the index and the metadata; ``changes`` (in words) join the list of what the threshold predates."""
    if metadata.get("open_set"):  # the threshold is kept as it was: say so (calibration.threshold_note)
        metadata["index"][CHANGES] = [*metadata["index"].get(CHANGES, []), *changes]
    run.metadata = metadata
    metadata["index"]["classes"] = [c.as_dict() for c in indexed_classes(run)]
    files = index_files(run.index)  # the changes beside the index, or the index compacted: what changed, on average
    store.commit(files, run=metadata)
    committed(run.index, files)
    return indexed_classes(run)


def enrol(
    run_dir: str | os.PathLike, classes: Mapping[str, torch.Tensor], device: torch.device | str = "cpu"
) -> list[IndexedClass]:
    """Embed each name's uint8 images and add them to the run's index under that name, in one commit.

    A new name becomes a new class with the next label; a name the run knows gets more shots. Returns the
    enrolled classes as they now are.
    """
    for name, images in classes.items():
        check_label(name)
        if len(images) == 0:
            raise ConfigError("label", f"no images to enrol under {quote(name)}")
    with run_for_change(run_dir, device) as (store, run):
        metadata = copy.deepcopy(run.metadata)
        names = metadata.setdefault("class_names", [str(c) for c in metadata.get("dataset_classes", [])])
        records = {r.label: r for r in indexed_classes(run)}
        now, labels = _now(), []
        for name, images in classes.items():
            if name not in names:
                names.append(name)
            label = names.index(name)
            run.index.add(run.embedder.embed(images), np.full(len(images), label))
            old = records.get(label)
            origin, added = (old.origin, old.added) if old else ("enrolled", now)
            records[label] = IndexedClass(label, name, 0, origin, added, now)
            labels.append(label)
        counts = metadata["index"].setdefault(ENROLLED, {})  # what a new training would drop (store.enrolled_classes)
        for name, images in classes.items():
            counts[name] = counts.get(name, 0) + len(images)
        metadata["index"]["classes"] = [r.as_dict() for r in records.values()]  # origins and times for _commit
        changes = [f"enrolled {len(images)} image(s) as {name}" for name, images in classes.items()]
        result = {c.label: c for c in _commit(store, run, metadata, changes)}
    return [result[label] for label in labels]


def read_class_folders(root: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[tuple[Path, str]]]:
    """Each sub-folder of ``root`` that holds images, as ``{class name: uint8 images}``, and the files skipped
    as unreadable or blank (``(path, why)``). A class whose every file was skipped is left out."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("folder", f"{{folder}} {root} is not a folder")
    found = class_folders(root)
    if "." in found:
        raise ConfigError("folder", f"{{folder}} {root} holds images itself: put each class in a sub-folder")
    if not found:
        raise ConfigError("folder", f"{{folder}} {root} holds no sub-folder of images")
    for name in found:
        check_label(name, "folder")
    paths = [path for files in found.values() for path in files]
    loaded = load_images(paths)
    owner = np.repeat(np.arange(len(found)), [len(files) for files in found.values()])[loaded.kept]
    classes = {name: loaded.images[torch.from_numpy(owner == i)] for i, name in enumerate(found) if (owner == i).any()}
    return classes, loaded.skipped


def forget(run_dir: str | os.PathLike, name: str) -> IndexedClass:
    """Remove the class ``name`` from the run's index (its label stays reserved for it). Returns what was removed."""
    with run_for_change(run_dir) as (store, run):
        found = [c for c in indexed_classes(run) if c.name == name]
        if not found:
            raise ClassNotFoundError(
                f"the index of {run_dir} has no class {quote(name)}: `embed index --run-dir {run_dir}` lists them"
            )
        run.index.remove(found[0].label)
        metadata = copy.deepcopy(run.metadata)
        metadata["index"].get(ENROLLED, {}).pop(name, None)  # its enrolled images are gone with it
        _commit(store, run, metadata, [f"forgot {name}"])
    return found[0]
