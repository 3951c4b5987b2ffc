"""Small pictures of the classes in a run's index, so a page can show what each class looks like.

An enrolled class keeps copies of its first :data:`MOST` enrolled images, as the embedder saw them (uint8
28x28), in ``thumbnails/<sha256 of its name>.npz`` inside the run folder: the name is data, never a path.
Each file records the class's ``added`` time from the index, so a file left behind by a class that was
forgotten and enrolled again since is not shown as the new class's. A training class shows the train
image nearest each of its centroids (the index's ``support_rows``, as the report draws them).

Writes happen under the run's lock, each file atomically; the index stays the truth: a thumbnail file is
written after its enrolment is committed, and a crash in between leaves a class with no pictures.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from embedder.data.dataset import Dataset
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.utils.files import write_bytes_atomic

FOLDER = "thumbnails"
MOST = 20  # pictures kept per class: enough to show, small enough to send


def thumbnail_path(run_dir: str | os.PathLike, name: str) -> Path:
    """Where the enrolled pictures of class ``name`` are kept: a hash of the name, inside the run folder."""
    return Path(run_dir) / FOLDER / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.npz"


def _read(path: Path) -> tuple[np.ndarray, str] | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["images"].astype(np.uint8), str(saved["added"])
    except (OSError, ValueError, KeyError):  # absent, or not ours: no pictures
        return None


def enrolled_thumbnails(run_dir: str | os.PathLike, name: str, added: str | None) -> np.ndarray:
    """The kept pictures of the enrolled class ``name`` added at ``added`` (``(N, 28, 28)`` uint8, maybe empty)."""
    found = _read(thumbnail_path(run_dir, name))
    if found is None or found[1] != str(added):
        return np.zeros((0, 28, 28), dtype=np.uint8)
    return found[0]


def add_thumbnails(run_dir: str | os.PathLike, name: str, added: str | None, images: np.ndarray) -> None:
    """Keep ``images`` (uint8 ``(N, 28, 28)``) as pictures of class ``name``, after those it has, up to :data:`MOST`.

    Takes the run's lock (a :class:`~embedder.errors.RunError` at once if another process holds it).
    """
    store = RunDir(run_dir)
    with store.lock():
        path = thumbnail_path(run_dir, name)
        kept = enrolled_thumbnails(run_dir, name, added)
        if len(kept) >= MOST:
            return
        pictures = np.concatenate([kept, np.asarray(images, dtype=np.uint8).reshape(-1, 28, 28)])[:MOST]
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=pictures, added=np.str_(str(added)), name=np.str_(name))
        path.parent.mkdir(exist_ok=True)
        for stale in path.parent.glob(".*.tmp"):  # a killed writer's temp files: nobody else writes here
            stale.unlink(missing_ok=True)
        write_bytes_atomic(path, buffer.getvalue())


def remove_thumbnails(run_dir: str | os.PathLike, name: str) -> None:
    """Delete the kept pictures of class ``name``, under the run's lock."""
    with RunDir(run_dir).lock():
        thumbnail_path(run_dir, name).unlink(missing_ok=True)


def training_thumbnails(run: Run, dataset: Dataset) -> dict[int, np.ndarray]:
    """For each training class, by label: the train images the index's supports stand for (nearest each centroid)."""
    rows = np.asarray(run.metadata.get("index", {}).get("support_rows", []), dtype=np.int64)
    rows = rows[(rows >= 0) & (rows < len(dataset.train_labels))]
    if len(rows) == 0:
        return {}
    labels = dataset.train_labels[rows].numpy()
    images = dataset.train_images[rows].numpy()
    return {int(c): images[labels == c][:MOST] for c in np.unique(labels)}
