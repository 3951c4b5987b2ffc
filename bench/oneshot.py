"""One-shot benchmark: train on MNIST classes 0,1,2 with the default options on the CPU, then
report N-way K-shot accuracy on MNIST test (supports from the train split, 200 seeded episodes)
against raw-pixel and HOG-like baselines on the very same episodes.

    python bench/oneshot.py [--data-dir DIR] [--run-dir runs/bench] [--skip-train] [--all-classes]
    python bench/oneshot.py --skip-train --run-dir RUN --index-dims 256,128,64,32 --no-baselines

``--all-classes`` also trains on 0-9 and reports 1-NN accuracy against the full train split.
``--index-dims`` adds a row per dimension D: the run's embeddings through the PCA that ``--index-dim D``
puts in the index (faiss ``PCAMatrix`` trained on the training classes' train-split embeddings, then L2
normalisation), on the very same episodes. A ``--run-dir`` still training is scored from its checkpoint.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from common import run_embedder

from embedder.baselines import hog_features, raw_pixel_features
from embedder.config import TrainConfig
from embedder.data import load_dataset
from embedder.evaluation import evaluate_episodes
from embedder.fewshot import NearestNeighbor
from embedder.run import Run
from embedder.training import train

SETTINGS = [
    ("10-way 1-shot", list(range(10)), 1),
    ("10-way 5-shot", list(range(10)), 5),
    ("unseen 7-way 1-shot", list(range(3, 10)), 1),
]


def report(name: str, train_x: np.ndarray, test_x: np.ndarray, dataset, episodes: int) -> None:
    cells = []
    for _, classes, shots in SETTINGS:
        r = evaluate_episodes(
            train_x,
            dataset.train_labels.numpy(),
            test_x,
            dataset.test_labels.numpy(),
            classes,
            shots=shots,
            episodes=episodes,
            seed=0,
        )
        cells.append(f"{100 * r.mean:5.1f} ± {100 * r.ci95:.1f}")
    print(f"| {name:<34} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", default="runs/bench")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--skip-train", action="store_true", help="evaluate the run already in --run-dir")
    parser.add_argument("--all-classes", action="store_true", help="also train on 0-9, 1-NN on the full train split")
    parser.add_argument("--index-dims", default="", help="comma-separated PCA dimensions to score as well")
    parser.add_argument("--no-baselines", action="store_true", help="skip the raw-pixel and HOG-like rows")
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_dir)
    if not args.skip_train:
        started = time.perf_counter()
        train(
            TrainConfig(classes=[0, 1, 2], data_dir=args.data_dir, run_dir=args.run_dir, device="cpu"),
            force=True,
            progress=False,
            dataset=dataset,
        )
        print(f"training wall time (classes 0,1,2, defaults, CPU): {time.perf_counter() - started:.0f} s")
    embedder, source = run_embedder(args.run_dir, dataset)
    print(f"embeddings from {source}")
    print(f"\nMNIST test queries, train-split supports, {args.episodes} episodes, mean ± 95% CI (%)\n")
    print("| features                           | " + " | ".join(name for name, _, _ in SETTINGS) + " |")
    print("|---|---|---|---|")
    if not args.no_baselines:
        for name, features in (("raw pixels (cosine)", raw_pixel_features), ("HOG-like, 7x7 cells", hog_features)):
            report(name, features(dataset.train_images), features(dataset.test_images), dataset, args.episodes)
    train_x, test_x = embedder.embed(dataset.train_images), embedder.embed(dataset.test_images)
    report(f"tripletshot, {train_x.shape[1]}-d", train_x, test_x, dataset, args.episodes)
    trained = np.isin(dataset.train_labels.numpy(), [0, 1, 2])
    for dim in [int(d) for d in args.index_dims.split(",") if d]:
        pca = faiss.PCAMatrix(train_x.shape[1], dim)
        pca.train(train_x[trained])  # the training classes only, as the index's PCA is trained

        def reduce(x: np.ndarray, pca: faiss.PCAMatrix = pca) -> np.ndarray:
            y = pca.apply(x)
            return y / np.linalg.norm(y, axis=1, keepdims=True)

        report(f"tripletshot, PCA to {dim}-d", reduce(train_x), reduce(test_x), dataset, args.episodes)

    if args.all_classes:
        run_dir = args.run_dir + "-all"
        train(
            TrainConfig(classes=list(range(10)), data_dir=args.data_dir, run_dir=run_dir, device="cpu"),
            force=True,
            progress=False,
            dataset=dataset,
        )
        full = Run.load(run_dir)
        classifier = NearestNeighbor(full.embedder)
        classifier.process_support_set(dataset.train_images, dataset.train_labels)
        predicted, _ = classifier.predict(dataset.test_images)
        print(
            f"\ntrained on 0-9: 1-NN against the full train split, MNIST test accuracy "
            f"{100 * (predicted == dataset.test_labels.numpy()).mean():.2f}%"
        )


if __name__ == "__main__":
    main()
