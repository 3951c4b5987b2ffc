"""Selection screen for the unlabelled pool: MNIST's *train* split only, rotated class splits, through the trainer.

    python bench/unlabelled.py --splits 3,4,5/6,7,8/3,7,9 --variants strict,pool --steps 300 [--episodes 100]
    python bench/unlabelled.py --domain fashion-mnist --splits 0,1,2 --variants strict,pool

The train split is cut in two seeded halves: the first is the dataset's train split (labelled classes, the pool,
supports), the second its test split (queries). MNIST's test split is never read. For each split of three
classes, each variant trains with ``embed train``'s own :func:`embedder.training.trainer.train` for about
``--steps`` steps, then scores 1-shot episodes: unseen N-way on every other class, and all-classes 10-way, with
queries from the second half and supports from the first (``--per-class`` images of each class drawn, seeded).
A variant is a set of :class:`~embedder.config.TrainConfig` options (:data:`VARIANTS`); ``pool`` is
``--unlabelled rest``: the first half's images of the other classes, labels never read.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

from bench.common import machine
from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.evaluation.episodes import evaluate_episodes
from embedder.runs.run import Run
from embedder.training.trainer import train

POOL = {"unlabelled": "rest"}
VARIANTS: dict[str, dict[str, Any]] = {
    "strict": {},  # the defaults: triplets on strokes
    "strict-contrast": {"loss": "contrast"},  # 0.5's default
    "pool": POOL,  # the defaults with a pool: class contrast + the pool's instance contrast
    "pool-triplet": {**POOL, "loss": "triplet"},
    "pool-w0.5": {**POOL, "unlabelled_weight": 0.5},
    "pool-w2": {**POOL, "unlabelled_weight": 2.0},
    "pool-inst": {**POOL, "instance_weight": 0.5},  # instance contrast on the labelled images too
    "pool-aug1.5": {**POOL, "augment": 1.5},  # stronger augmentation, for both
    "pool-aug2": {**POOL, "augment": 2.0},
    "pool-k20": {**POOL, "unlabelled_clusters": 20},  # pseudo-labels: 20 clusters of the pool
    "pool-k50": {**POOL, "unlabelled_clusters": 50},
    "pool-k100": {**POOL, "unlabelled_clusters": 100},
    "pool-k200": {**POOL, "unlabelled_clusters": 200},
}


def halves(dataset: Dataset, seed: int = 0) -> Dataset:
    """The train split as a dataset of its own: a seeded half to train on, the other half as its test split."""
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(dataset.train_labels)))
    first, second = order[: len(order) // 2], order[len(order) // 2 :]
    return Dataset(
        dataset.name, dataset.train_images[first], dataset.train_labels[first], dataset.train_images[second],
        dataset.train_labels[second], class_names=list(dataset.class_names), root=dataset.root,
    )  # fmt: skip


def sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
    )


def score(run_dir: str, data: Dataset, trained: list[int], per_class: int, episodes: int) -> list[float]:
    """Unseen N-way 1-shot and all-classes 1-shot, in percent: centred as the run is (on the trained classes'
    mean), then centred on the mean of every train-half image (labelled and pool alike)."""
    embedder = Run.load(run_dir).embedder
    s = sample(data.train_labels.numpy(), per_class, 1)
    q = sample(data.test_labels.numpy(), per_class, 2)
    unseen = [c for c in data.classes if c not in trained]
    scores = []
    for centre in ("trained", "all"):
        if centre == "all":
            embedder.fit_centering(data.train_images[torch.from_numpy(sample(data.train_labels.numpy(), 500, 3))])
        sx, sl = embedder.embed(data.train_images[s]), data.train_labels.numpy()[s]
        qx, ql = embedder.embed(data.test_images[q]), data.test_labels.numpy()[q]
        results = [evaluate_episodes(sx, sl, qx, ql, classes, 1, episodes, 0) for classes in (unseen, data.classes)]
        scores += [100 * r.mean for r in results]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--splits", default="3,4,5/6,7,8/3,7,9", help="slash-separated class triples")
    parser.add_argument("--variants", default="strict,pool")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--m", type=int, default=32, help="m_per_class")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--run-dir", default="runs/bench-unlabelled")
    args = parser.parse_args()
    data = halves(load_dataset(args.domain, args.data_dir))
    print(f"# {args.domain} train split halves; {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        "| variant | split | unseen 1-shot | all 1-shot | unseen, centred on all | all, centred on all | train s |\n"
        "|---|---|---|---|---|---|---|",
        flush=True,
    )
    for split in args.splits.split("/"):
        trained = [int(c) for c in split.split(",")]
        per_epoch = math.ceil(0.9 * int(np.isin(data.train_labels.numpy(), trained).sum()) / (3 * args.m))
        for name in args.variants.split(","):
            options = {
                "m_per_class": args.m,
                "epochs": max(1, round(args.steps / per_epoch)),
                "shots": 1,
                **VARIANTS[name],
            }
            config = TrainConfig(classes=trained, dataset=args.domain, run_dir=args.run_dir, device="cpu", **options)
            started = time.perf_counter()
            train(config, force=True, progress=False, log=lambda _: None, dataset=data)
            seconds = time.perf_counter() - started
            cells = " | ".join(f"{x:.1f}" for x in score(args.run_dir, data, trained, args.per_class, args.episodes))
            print(f"| {name} | {split} | {cells} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
