"""bench/search.py's streamed ground truth: supports made chunk by chunk must be searched as if held whole."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def search(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the script imports its sibling `common`
    spec = importlib.util.spec_from_file_location("bench_search", BENCH / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CHUNK", 300)  # 100k in the benchmark; 4 chunks of 1000 here
    yield module
    sys.modules.pop("bench_search", None)


def test_replicated_chunks_are_the_same_on_every_pass_and_near_their_source(search):
    refs = np.random.default_rng(0).standard_normal((70, 32)).astype(np.float32)
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    first = list(search.replicated_chunks(refs, 1000))
    again = np.concatenate([block for _, block in search.replicated_chunks(refs, 1000)])
    whole = np.concatenate([block for _, block in first])
    assert [start for start, _ in first] == [0, 300, 600, 900] and whole.shape == (1000, 32)
    np.testing.assert_array_equal(whole, again)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, rtol=1e-5)
    distance = np.linalg.norm(whole - refs[np.arange(1000) % 70], axis=1)
    assert 0.05 < distance.mean() < 0.15  # noise of norm ~0.1


def test_exact_top1_over_chunks_is_flat_search_over_all_of_them(search):
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((70, 32)).astype(np.float32)
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    queries = rng.standard_normal((40, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    whole = np.concatenate([block for _, block in search.replicated_chunks(refs, 1000)])
    flat = faiss.IndexFlatIP(32)
    flat.add(whole)
    _, truth = flat.search(queries, 1)
    rows = search.exact_top1(refs, queries, 1000)
    assert (rows >= 300).any()  # the answers do come from later chunks: their offsets are counted
    np.testing.assert_array_equal(rows, truth[:, 0])
