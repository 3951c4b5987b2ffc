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
   Build time (training included), bytes per vector of the saved index, queries/s, recall@1 against flat.
   ``--types-only`` runs this part alone.

Embeddings come from ``--run-dir`` (a trained run, loaded through ``Run.load``) or else an untrained model.
faiss and torch both run on all cores (``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np
import torch
from common import machine
from sklearn.neighbors import NearestNeighbors

from embedder.config import IndexSpec
from embedder.data import load_dataset
from embedder.embedding import Embedder
from embedder.index import SupportIndex
from embedder.model import EmbeddingNet
from embedder.run import Run


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


def replicated(refs: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """``n`` unit vectors: rows of ``refs`` in turn, each plus Gaussian noise of norm ~``noise``, renormalised."""
    out = np.empty((n, refs.shape[1]), dtype=np.float32)
    sigma = noise / np.sqrt(refs.shape[1])
    for start in range(0, n, 100_000):
        rows = refs[np.arange(start, min(n, start + 100_000)) % len(refs)]
        block = rows + rng.standard_normal(rows.shape, dtype=np.float32) * sigma
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def one_type(kind: str, supports: np.ndarray, queries: np.ndarray) -> str:
    """One table row: ``kind`` built on ``supports`` (labels = row numbers), searched with ``queries``."""
    flat = faiss.IndexFlatIP(supports.shape[1])
    flat.add(supports)
    _, truth = flat.search(queries, 1)
    del flat
    index = SupportIndex(supports.shape[1], IndexSpec(index=kind))
    start = time.perf_counter()
    index.add(supports, np.arange(len(supports)))  # trains first (on a sample of at most 100k)
    build = time.perf_counter() - start
    start = time.perf_counter()
    found, _ = index.search(queries, 1)
    seconds = time.perf_counter() - start
    size = len(index.to_bytes()) / len(supports)
    return (
        f"| {index.describe()} | {len(supports):,} | {build:.1f} | {size:.0f} | {len(queries) / seconds:.0f} | "
        f"{100 * (found[:, 0] == truth[:, 0]).mean():.1f}% |"
    )


def index_types(refs: np.ndarray, queries: np.ndarray, n: int, hnsw_n: int, types: list[str]) -> None:
    """Section 3: each index type on ``n`` replicated supports (``hnsw_n`` for hnsw, whose build is slow)."""
    print("\n| index (SupportIndex defaults) | supports | build (s) | bytes/vector | queries/s | recall@1 vs flat |")
    print("|---|---|---|---|---|---|")
    for kind in types:
        supports = replicated(refs, hnsw_n if kind == "hnsw" else n, np.random.default_rng(0))
        print(one_type(kind, supports, queries), flush=True)
        del supports


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
        index_types(refs, queries[: args.million_queries], args.supports, args.hnsw_supports, types)
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
