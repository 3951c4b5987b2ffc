"""Enrol and forget write what they change: a journal beside the index (``index_changes``), replayed on read and
compacted into the index once it grows; the label and id arrays grow by doubling. Real faiss, real run folders."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from embedder.index.support_index import SupportIndex
from embedder.runs import index_files
from embedder.runs.enrolment import enrol, forget
from embedder.runs.run import Run
from embedder.runs.store import RunDir


@pytest.fixture()
def run(tmp_path, digits_run):
    target = tmp_path / "run"
    shutil.copytree(digits_run, target)
    return target


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def state(index: SupportIndex) -> tuple:
    return index.labels.tolist(), index.ids.tolist(), index.next_id, index.vectors().round(5).tolist()


def test_an_enrolment_writes_the_journal_and_leaves_the_index_file_as_it_was(run, digits):
    before = RunDir(run).manifest()["files"]["index"]
    enrol(run, {"ring": digits.train_images[:3]})
    files = RunDir(run).manifest()["files"]
    assert files["index"] == before and "index_changes" in files
    assert files["index_changes"]["bytes"] < before["bytes"]
    loaded = Run.load(run)
    assert (loaded.index.labels == loaded.metadata["class_names"].index("ring")).sum() == 3


def test_the_journal_replays_enrol_forget_and_enrol_again_as_the_index_had_them(run, digits):
    enrol(run, {"ring": digits.train_images[:3], "hash": digits.train_images[3:5]})
    forget(run, "ring")
    forget(run, "4")  # a class of the index file itself
    enrol(run, {"ring": digits.train_images[5:6]})
    replayed = Run.load(run).index
    assert index_files.compact_index(run) and "index_changes" not in RunDir(run).manifest()["files"]
    compacted = Run.load(run).index
    assert state(replayed) == state(compacted)
    names = Run.load(run).metadata["class_names"]
    assert names.index("4") not in compacted.labels and (compacted.labels == names.index("ring")).sum() == 1
    assert not index_files.compact_index(run)  # nothing left to fold


def test_the_journal_is_folded_into_the_index_once_it_grows(run, digits, monkeypatch):
    monkeypatch.setattr(index_files, "COMPACT_FROM", 4)
    first = RunDir(run).manifest()["files"]["index"]["name"]
    enrol(run, {"ring": digits.train_images[:3]})
    assert RunDir(run).manifest()["files"]["index"]["name"] == first
    bound = max(4, math.isqrt(4 * len(Run.load(run).index)))  # journal vectors the index keeps beside it at most
    enrol(run, {"ring": digits.train_images[3 : 3 + bound]})  # past it: the whole index, no journal
    files = RunDir(run).manifest()["files"]
    assert files["index"]["name"] != first and "index_changes" not in files
    assert (Run.load(run).index.labels == Run.load(run).metadata["class_names"].index("ring")).sum() == 3 + bound


def test_a_journal_that_does_not_follow_its_index_is_refused():
    index = SupportIndex(8)
    index.add(unit(5, 8, 0), [0, 0, 1, 1, 2])
    base = index.to_bytes()
    index.mark_serialised()
    index.add(unit(2, 8, 1), [3, 3])
    changes = index.changes_to_bytes()
    later = SupportIndex.from_bytes(base)
    later.apply_changes(changes)
    assert state(later) == state(index)
    with pytest.raises(ValueError, match="not newer"):
        later.apply_changes(changes)  # replayed twice: its ids are already there
    with pytest.raises(ValueError, match="damaged"):
        SupportIndex.from_bytes(base).apply_changes(b"not an npz")


def test_the_label_and_id_arrays_grow_by_doubling_not_by_copying_per_change():
    index = SupportIndex(8)
    index.add(unit(100, 8, 0), np.zeros(100))
    capacity = len(index._labels)
    for i in range(20):  # enrolments of one vector: no new buffer until it is full
        index.add(unit(1, 8, i + 1), [1])
    assert len(index._labels) in (capacity, 2 * capacity) and index.labels.tolist() == [0] * 100 + [1] * 20
    assert index.ids.tolist() == list(range(120)) and len(index) == 120
    torch.testing.assert_close(torch.tensor(index.search(unit(1, 8, 5), 1)[1]), torch.ones(1, 1))


def test_a_whole_index_committed_drops_the_journal_of_the_old_one(run, digits):
    """A training over the run, or a compaction, brings a whole index: the old journal would replay onto it."""
    enrol(run, {"ring": digits.train_images[:2]})
    store = RunDir(run)
    store.commit({"index": Run.load(run).index.to_bytes()})
    files = store.manifest()["files"]
    assert "index_changes" not in files
    assert not [p.name for p in run.iterdir() if p.name.startswith("index_changes-")]  # collected too
