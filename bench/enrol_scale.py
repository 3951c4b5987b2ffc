"""Enrolment latency at scale: one image enrolled into a run whose index holds a million supports.

    python bench/enrol_scale.py [--supports 1000000] [--dim 64] [--repeats 5]

Trains a small run on the bundled digits (two steps: the weights do not matter here), fills its flat index with
``--supports`` random unit vectors of the digits' labels, then times ``embedder.enrol`` of one image, each in turn,
two ways: writing the whole index at every change (what tripletshot 0.6 did, reproduced by committing
``index.to_bytes()``), and writing the journal beside it (embedder.runs.index_files). Prints the median of each and
their ratio. Both include reading the run (the index file, its sha256 and faiss's deserialisation), which is still
O(N): the ratio is the write's saving. ``--dim 64``: the index of a 1024-d embedder at 1M supports is 4 GB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from embedder import TrainConfig, enrol
from embedder.data.datasets import load_dataset
from embedder.runs import enrolment
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.training.trainer import train


def filled_run(folder: Path, supports: int, dim: int) -> Path:
    """A digits run whose index holds ``supports`` random unit vectors besides its own (written whole)."""
    run_dir = folder / "run"
    config = TrainConfig(dataset="digits", classes=[0, 1, 2], embedding_dim=dim, width=8, device="cpu",
                         run_dir=str(run_dir), dry_run=True)  # fmt: skip
    train(config, progress=False, log=lambda _: None)
    store, run = RunDir(run_dir), Run.load(run_dir)
    rng = np.random.default_rng(0)
    for start in range(0, supports, 100_000):
        x = rng.standard_normal((min(100_000, supports - start), dim), dtype=np.float32)
        run.index.add(x / np.linalg.norm(x, axis=1, keepdims=True), rng.integers(0, 10, len(x)))
    store.commit({"index": run.index.to_bytes()})
    return run_dir


def timed_enrolments(run_dir: Path, images: np.ndarray, repeats: int) -> list[float]:
    seconds = []
    for i in range(repeats):
        started = time.perf_counter()
        enrol(run_dir, {f"new{i}": images[i : i + 1]})
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supports", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = load_dataset("digits").train_images
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = filled_run(Path(scratch), args.supports, args.dim)
        print(f"index: {len(Run.load(run_dir).index):,} supports of dim {args.dim}")
        journal = timed_enrolments(run_dir, images, args.repeats)
        journal_files = RunDir(run_dir).manifest()["files"]
        whole_files = enrolment.index_files
        enrolment.index_files = lambda index: {"index": index.to_bytes()}  # 0.6: the whole index at every change
        try:
            whole = timed_enrolments(run_dir, images[args.repeats :], args.repeats)
        finally:
            enrolment.index_files = whole_files
    a, b = statistics.median(whole), statistics.median(journal)
    print(f"whole index written per enrolment (0.6): median {a:.3f} s of {[round(s, 3) for s in whole]}")
    print(f"journal beside the index (now):          median {b:.3f} s of {[round(s, 3) for s in journal]}")
    print(f"journal after {args.repeats} enrolments: {journal_files['index_changes']['bytes']:,} bytes, "
          f"index file {journal_files['index']['bytes']:,} bytes; ratio {a / b:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
