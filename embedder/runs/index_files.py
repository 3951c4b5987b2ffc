"""A run's support index on disk: the index written whole, and beside it the small journal of what enrol and forget
changed since (``index_changes``), replayed when the run is read and compacted into the index once it grows.

An enrolment of one image into an index of a million supports then writes a few kilobytes, not the whole index
(``bench/enrol_scale.py`` measures it). Both files are committed through :meth:`embedder.runs.store.RunDir.commit`,
so a change is atomic and locked like any other: ``run.json`` names the index and the journal that go together.
"""

from __future__ import annotations

import math
import os
from typing import Any

from embedder.errors import RunError
from embedder.index.support_index import SupportIndex
from embedder.runs.store import RunDir

CHANGES = "index_changes"  # the journal's role in the manifest
# The journal is folded into the index once it holds this many vectors, or sqrt(4 x the index's) when more: a
# change writes the journal (O(journal)), a compaction the whole index, so that bound keeps both small on average.
COMPACT_FROM = 4096


def read_index(store: RunDir, manifest: dict[str, Any]) -> SupportIndex:
    """The run's index as ``manifest`` has it: the index file, with its journal replayed if there is one."""
    try:
        index = SupportIndex.from_bytes(store.read("index", manifest), source=str(store.file_path("index", manifest)))
        if CHANGES in manifest["files"]:
            source = str(store.file_path(CHANGES, manifest))
            index.apply_changes(store.read(CHANGES, manifest), source=source)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    return index


def compaction_due(index: SupportIndex) -> bool:
    """Whether the journal has grown past :data:`COMPACT_FROM` vectors, or sqrt(4 x the index's) when that is more
    (or the index was re-encoded, so that only a whole index says what it holds)."""
    pending = index.pending
    return pending is None or pending > max(COMPACT_FROM, math.isqrt(4 * len(index)))


def index_files(index: SupportIndex, compact: bool = False) -> dict[str, bytes]:
    """What a commit of a changed index writes: the journal alone, or the whole index when ``compact`` or when
    :func:`compaction_due` (its commit then drops the journal: :data:`embedder.runs.store.BELONGS_TO_INDEX`)."""
    if compact or compaction_due(index):
        return {"index": index.to_bytes()}
    return {CHANGES: index.changes_to_bytes()}


def committed(index: SupportIndex, files: dict[str, bytes]) -> None:
    """After the commit of :func:`index_files`: a whole index starts a new journal."""
    if "index" in files:
        index.mark_serialised()


def compact_index(run_dir: str | os.PathLike) -> bool:
    """Fold the run's journal into its index, under its lock; returns whether there was one to fold."""
    store = RunDir(run_dir)
    with store.lock():
        manifest = store.manifest()
        if CHANGES not in manifest["files"]:
            return False
        index = read_index(store, manifest)
        store.commit({"index": index.to_bytes()})
    return True
