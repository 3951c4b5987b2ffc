"""Search: faiss against scikit-learn's brute-force nearest neighbours on the project's embeddings, then 1M.

    python bench/search.py --data-dir DIR [--run-dir RUN] [--million-queries 1000] [--skip-million]
    python bench/search.py --data-dir DIR --run-dir RUN --types-only [--supports 1000000] [--hnsw-supports 100000]

1. The 60k MNIST train embeddings are the references, the 10k test embeddings the queries (dim 1024,
   L2-normalised). faiss ``IndexFlatIP`` (the project's index: inner product on unit vectors = cosine)
   against ``NearestNeighbors(algorithm="brute", metric="euclidean")``, which ranks unit vectors the
   same way. Top-1 must agree; a disagreement is reported with whether it is an exact tie.
2. Scaling: 1M random unit vectors as references, ``--million-queries`` random unit queries. Flat search
   against IVF (``IndexIVFFlat``, inner product, trained on a 50k subset), recall@1 measured against flat.
   Random vectors are IVF's worst case (no clusters to find), so IVF is also run on the real embeddings.

3. Every ``--index`` type of the project (``SupportIndex``, defaults as ``embed train`` has them) on
   ``--supports`` vectors: the real train embeddings replicated with small Gaussian noise (0.1 of a unit
   vector's norm, then renormalised) so the clusters of real data stay; queries are real test embeddings.
   Supports are made, searched exactly and added 100k at a time (the first 100k train the index), so 10M
   compressed ones fit in memory. Build time (training and adding, not making the vectors), bytes per
   vector of the saved index, queries/s, and how often the top-1 is flat's: the same row, a copy of the
   same real embedding (what the noise cannot tell apart), a support of the same class (what a one-shot
   label needs).
   ``--types-only`` runs this part alone.

Embeddings come from ``--run-dir`` (a trained run, loaded through ``Run.load``) or else an untrained model.
faiss and torch both run on all cores (``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator

import faiss
import numpy as np
import torch
from common import machine
from sklearn.neighbors import NearestNeighbors

from embedder.config import IndexSpec
from embedder.data.datasets import load_dataset
from embedder.index.support_index import SupportIndex
from embedder.models.embedder import Embedder
from embedder.models.network import EmbeddingNet
from embedder.runs.run import Run


def clock(fn):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def flat_search(refs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    index = faiss.IndexFlatIP(refs.shape[1])
    _, build = clock(lambda: index.add(refs))
    (_, ids), search = clock(lambda: index.search(queries, 1))
    return ids[:, 0], build, search


def ivf_search(
    refs: np.ndarray, queries: np.ndarray, nlist: int, nprobes: list[int], train_size: int, seed: int = 0
) -> tuple[float, list[tuple[int, np.ndarray, float]]]:
    """Build an IVF-flat inner-product index; return its build seconds and (nprobe, top-1 ids, seconds) rows."""
    dim = refs.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(seed).choice(len(refs), size=min(train_size, len(refs)), replace=False)
    index.cp.seed = seed
    start = time.perf_counter()
    index.train(refs[np.sort(sample)])
    index.add(refs)
    build = time.perf_counter() - start
    rows = []
    for nprobe in nprobes:
        index.nprobe = nprobe
        (_, ids), seconds = clock(lambda: index.search(queries, 1))
        rows.append((nprobe, ids[:, 0], seconds))
    return build, rows


def random_unit(n: int, dim: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


CHUNK = 100_000  # supports generated, searched and added at a time: 10M never sit in memory at once


def replicated_chunks(refs: np.ndarray, n: int, seed: int = 0, noise: float = 0.1) -> Iterator[tuple[int, np.ndarray]]:
    """``n`` unit vectors as ``(first row, block)`` chunks: rows of ``refs`` in turn, each plus Gaussian noise of
    norm ~``noise``, renormalised. Chunk ``i`` draws from its own seeded stream, so every pass is the same."""
    sigma = noise / np.sqrt(refs.shape[1])
    for i, start in enumerate(range(0, n, CHUNK)):
        rows = refs[np.arange(start, min(n, start + CHUNK)) % len(refs)]
        block = rows + np.random.default_rng([seed, i]).standard_normal(rows.shape, dtype=np.float32) * sigma
        yield start, block / np.linalg.norm(block, axis=1, keepdims=True)


def exact_top1(refs: np.ndarray, queries: np.ndarray, n: int) -> np.ndarray:
    """Each query's nearest row among the ``n`` replicated supports, by exact search chunk by chunk."""
    best, rows = np.full(len(queries), -np.inf, dtype=np.float32), np.zeros(len(queries), dtype=np.int64)
    for start, block in replicated_chunks(refs, n):
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        scores, ids = flat.search(queries, 1)
        better = scores[:, 0] > best
        best[better], rows[better] = scores[better, 0], ids[better, 0] + start
    return rows


def one_type(
    kind: str, refs: np.ndarray, ref_labels: np.ndarray, queries: np.ndarray, truth: np.ndarray, n: int
) -> str:
    """One table row: ``kind`` built on ``n`` replicated supports (labels = row numbers), searched with ``queries``.

    Three agreements with flat's top-1 row (``truth``): the same row, a copy of the same real embedding, the same
    class.
    """
    index = SupportIndex(refs.shape[1], IndexSpec(index=kind))
    build = 0.0  # the adds only, not making the vectors
    for first, block in replicated_chunks(refs, n):
        start = time.perf_counter()
        index.add(block, np.arange(first, first + len(block)))  # the first chunk (100k) trains it
        build += time.perf_counter() - start
    start = time.perf_counter()
    found, _ = index.search(queries, 1)
    seconds = time.perf_counter() - start
    size = len(index.to_bytes()) / n
    found, name = found[:, 0], index.describe()
    del index
    same = [found == truth, found % len(refs) == truth % len(refs)]
    same.append(ref_labels[found % len(refs)] == ref_labels[truth % len(refs)])
    return (
        f"| {name} | {n:,} | {build:.1f} | {size:.0f} | {len(queries) / seconds:.0f} | "
        + " | ".join(f"{100 * s.mean():.1f}%" for s in same)
        + " |"
    )


def index_types(
    refs: np.ndarray, ref_labels: np.ndarray, queries: np.ndarray, n: int, hnsw_n: int, types: list[str]
) -> None:
    """Section 3: each index type on ``n`` replicated supports (``hnsw_n`` for hnsw, whose build is slow)."""
    print(
        "\n| index (SupportIndex defaults) | supports | build (s) | bytes/vector | queries/s "
        "| top-1 = flat's: row | copy of the same embedding | class |"
    )
    print("|---|---|---|---|---|---|---|---|")
    truths: dict[int, np.ndarray] = {}
    for kind in types:
        size = hnsw_n if kind == "hnsw" else n
        if size not in truths:
            truths[size] = exact_top1(refs, queries, size)
        print(one_type(kind, refs, ref_labels, queries, truths[size], size), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", help="a trained run (default: an untrained EmbeddingNet)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--million", type=int, default=1_000_000, help="random references in the scaling row")
    parser.add_argument("--million-queries", type=int, default=1000)
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists at 1M (the 60k row uses 256)")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--types-only", action="store_true", help="only section 3: every index type")
    parser.add_argument("--supports", type=int, default=1_000_000, help="replicated supports in section 3")
    parser.add_argument("--hnsw-supports", type=int, default=100_000, help="the same, for hnsw (slow to build)")
    parser.add_argument("--types", default="flat,ivf,hnsw,ivfpq,sq8")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    data = load_dataset("mnist", args.data_dir)
    if args.run_dir:
        embedder, source = Run.load(args.run_dir).embedder, f"run {args.run_dir}"
    else:
        torch.manual_seed(0)
        pixels = data.train_images.float() / 255.0
        embedder = Embedder(EmbeddingNet().eval(), float(pixels.mean()), float(pixels.std()))
        source = "an untrained EmbeddingNet"
    refs, queries = embedder.embed(data.train_images), embedder.embed(data.test_images)
    print(f"machine: {machine()}; faiss {faiss.__version__}, {args.threads} OpenMP threads")
    print(f"embeddings from {source}: {len(refs)} references, {len(queries)} queries, dim {refs.shape[1]}\n")
    if args.types_only:
        types = args.types.split(",")
        labels = data.train_labels.numpy()
        index_types(refs, labels, queries[: args.million_queries], args.supports, args.hnsw_supports, types)
        return

    faiss_ids, faiss_build, faiss_search = flat_search(refs, queries)
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute", metric="euclidean", n_jobs=args.threads)
    _, sk_build = clock(lambda: nn.fit(refs))
    (_, sk_ids), sk_search = clock(lambda: nn.kneighbors(queries))
    sk_ids = sk_ids[:, 0]
    differ = np.flatnonzero(faiss_ids != sk_ids)
    # A disagreement is a tie when both references are equally similar to the query (in float64).
    gap = np.abs(
        np.einsum("ij,ij->i", queries[differ].astype(np.float64), refs[faiss_ids[differ]].astype(np.float64))
        - np.einsum("ij,ij->i", queries[differ].astype(np.float64), refs[sk_ids[differ]].astype(np.float64))
    )
    faiss_total, sk_total = faiss_build + faiss_search, sk_build + sk_search
    print("| 60k refs x 10k queries, dim 1024, top-1 | build (s) | search (s) | total (s) | faiss speed-up |")
    print("|---|---|---|---|---|")
    print(f"| faiss IndexFlatIP | {faiss_build:.2f} | {faiss_search:.2f} | {faiss_total:.2f} | 1.00x |")
    print(
        f"| sklearn NearestNeighbors(brute, euclidean) | {sk_build:.2f} | {sk_search:.2f} | {sk_total:.2f} | "
        f"{sk_total / faiss_total:.2f}x |"
    )
    ties = int((gap < 1e-6).sum())
    print(
        f"\ntop-1 agreement: {len(queries) - len(differ)}/{len(queries)} identical; {len(differ)} differ, of which "
        f"{ties} are exact ties (similarity gap < 1e-6; largest gap {gap.max() if len(gap) else 0:.2e})",
        flush=True,
    )

    print("\n| IVF-flat on the real 60k (nlist 256, trained on all) | nprobe | search (s) | recall@1 vs flat |")
    print("|---|---|---|---|")
    build, rows = ivf_search(refs, queries, 256, [1, 4, 16], train_size=len(refs))
    for nprobe, ids, seconds in rows:
        print(f"| build {build:.1f} s | {nprobe} | {seconds:.2f} | {100 * (ids == faiss_ids).mean():.1f}% |")
    print(f"| flat (for scale) | all | {faiss_search:.2f} | 100% |", flush=True)
    if args.skip_million:
        return

    rng = np.random.default_rng(0)
    big, generate = clock(lambda: random_unit(args.million, refs.shape[1], rng))
    big_queries = random_unit(args.million_queries, refs.shape[1], rng)
    print(
        f"\nscaling: {args.million} random unit references ({big.nbytes / 2**30:.1f} GiB, generated in "
        f"{generate:.0f} s), {args.million_queries} random unit queries, top-1"
    )
    flat_ids, flat_build, flat_time = flat_search(big, big_queries)
    print(f"\n| index at {args.million // 1000}k x 1024 | build (s) | search (s) | queries/s | recall@1 vs flat |")
    print("|---|---|---|---|---|")
    print(
        f"| IndexFlatIP | {flat_build:.1f} | {flat_time:.2f} | {args.million_queries / flat_time:.0f} | 100% |",
        flush=True,
    )
    build, rows = ivf_search(big, big_queries, args.nlist, [1, 16, 64], train_size=50_000)
    for nprobe, ids, seconds in rows:
        print(
            f"| IndexIVFFlat nlist {args.nlist}, nprobe {nprobe} | {build:.1f} | {seconds:.2f} | "
            f"{args.million_queries / seconds:.0f} | {100 * (ids == flat_ids).mean():.1f}% |"
        )


if __name__ == "__main__":
    main()
