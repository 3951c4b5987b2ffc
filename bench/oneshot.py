"""One-shot benchmark: train on classes 0,1,2 of a dataset (MNIST unless --dataset) with the default
options on the CPU, then report N-way K-shot accuracy on its test split (supports from the train split,
200 seeded episodes) against raw-pixel and HOG-like baselines on the very same episodes.

    python bench/oneshot.py [--dataset fashion-mnist] [--data-dir DIR] [--run-dir runs/bench] [--skip-train]
                            [--all-classes]
    python bench/oneshot.py --skip-train --run-dir RUN --index-dims 256,128,64,32 --no-baselines
    python bench/oneshot.py --set loss=triplet --set descriptor=final   # a recipe other than the defaults

``--all-classes`` also trains on 0-9 and reports 1-NN accuracy against the full train split.
``--index-dims`` adds a row per dimension D: the run's embeddings through the PCA that ``--index-dim D``
puts in the index (faiss ``PCAMatrix`` trained on the training classes' train-split embeddings, then L2
normalisation), on the very same episodes.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from bench.baselines import hog_features, raw_pixel_features
from embedder.config import TrainConfig
from embedder.data.datasets import load_dataset
from embedder.evaluation.episodes import evaluate_episodes
from embedder.fewshot.classifiers import NearestNeighbor
from embedder.runs.run import Run
from embedder.training.trainer import train

TRAINED = [0, 1, 2]


def settings(classes: list[int]) -> list[tuple[str, list[int], int]]:
    """All classes 1-shot and 5-shot, and the classes training never saw, 1-shot."""
    unseen = [c for c in classes if c not in TRAINED]
    return [
        (f"{len(classes)}-way 1-shot", classes, 1),
        (f"{len(classes)}-way 5-shot", classes, 5),
        (f"unseen {len(unseen)}-way 1-shot", unseen, 1),
    ]


def report(name: str, train_x: np.ndarray, test_x: np.ndarray, dataset, episodes: int) -> None:
    cells = []
    for _, classes, shots in settings(dataset.classes):
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


def _option(item: str) -> tuple[str, object]:
    """``name=value`` with the value typed as the TrainConfig field's default is."""
    from dataclasses import fields

    name, _, value = item.partition("=")
    default = {f.name: f.default for f in fields(TrainConfig)}.get(name)
    if isinstance(default, float):
        return name, float(value)
    if isinstance(default, int) or name in ("epochs", "batch_size"):
        return name, int(value)
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="a name of embedder.data.datasets.DATASETS or folder:PATH")
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", default="runs/bench")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--skip-train", action="store_true", help="evaluate the run already in --run-dir")
    parser.add_argument("--all-classes", action="store_true", help="also train on 0-9, 1-NN on the full train split")
    parser.add_argument("--all-run", help="with --all-classes: score this run trained on every class, do not train")
    parser.add_argument("--index-dims", default="", help="comma-separated PCA dimensions to score as well")
    parser.add_argument("--no-baselines", action="store_true", help="skip the raw-pixel and HOG-like rows")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a TrainConfig option")
    parser.add_argument(
        "--centre-on-trained",
        action="store_true",
        help="refit the run's centring on its training classes' train images alone (a pooled run is centred on "
        "them and its pool): the descriptor before 0.6, on the same network",
    )
    args = parser.parse_args()
    options = dict(_option(item) for item in args.set)
    dataset = load_dataset(args.dataset, args.data_dir)
    if not args.skip_train:
        started = time.perf_counter()
        train(
            TrainConfig(
                classes=TRAINED,
                dataset=args.dataset,
                data_dir=args.data_dir,
                run_dir=args.run_dir,
                device="cpu",
                **options,
            ),
            force=True,
            progress=False,
            dataset=dataset,
        )
        seconds = time.perf_counter() - started
        recipe = ", ".join(args.set) or "defaults"
        print(f"training wall time ({args.dataset} classes 0,1,2, {recipe}, CPU): {seconds:.0f} s")
    run = Run.load(args.run_dir)
    print(
        f"run {args.run_dir}: {run.metadata['options']['epochs']} epochs, "
        f"train_seconds {run.metadata['train_seconds']:.0f}"
    )
    names = ", ".join(f"{c} {dataset.class_names[c]}" for c in TRAINED)
    print(f"\n{args.dataset} test queries, train-split supports, {args.episodes} episodes, mean ± 95% CI (%)")
    print(f"trained on {names}\n")
    columns = " | ".join(name for name, _, _ in settings(dataset.classes))
    print(f"| features                           | {columns} |")
    print("|---|---|---|---|")
    if not args.no_baselines:
        for name, features in (("raw pixels (cosine)", raw_pixel_features), ("HOG-like, 7x7 cells", hog_features)):
            report(name, features(dataset.train_images), features(dataset.test_images), dataset, args.episodes)
    if args.centre_on_trained:
        trained_rows = np.isin(dataset.train_labels.numpy(), run.trained_classes)
        run.embedder.fit_centering(dataset.train_images[trained_rows])
        print("centring refitted on the training classes' train images alone")
    train_x, test_x = run.embedder.embed(dataset.train_images), run.embedder.embed(dataset.test_images)
    report(f"tripletshot, {train_x.shape[1]}-d", train_x, test_x, dataset, args.episodes)
    trained = np.isin(dataset.train_labels.numpy(), TRAINED)
    for dim in [int(d) for d in args.index_dims.split(",") if d]:
        pca = faiss.PCAMatrix(train_x.shape[1], dim)
        pca.train(train_x[trained])  # the training classes only, as the index's PCA is trained

        def reduce(x: np.ndarray, pca: faiss.PCAMatrix = pca) -> np.ndarray:
            y = pca.apply(x)
            return y / np.linalg.norm(y, axis=1, keepdims=True)

        report(f"tripletshot, PCA to {dim}-d", reduce(train_x), reduce(test_x), dataset, args.episodes)

    if args.all_classes:
        all_classes(args, dataset, options)


def all_classes(args: argparse.Namespace, dataset, options: dict) -> None:
    """1-NN of the test split against the full train split, by a run trained on every class."""
    run_dir = args.all_run or args.run_dir + "-all"
    if not args.all_run:
        train(
            TrainConfig(
                classes=dataset.classes,
                dataset=args.dataset,
                data_dir=args.data_dir,
                run_dir=run_dir,
                device="cpu",
                **options,
            ),
            force=True,
            progress=False,
            dataset=dataset,
        )
    full = Run.load(run_dir)
    classifier = NearestNeighbor(full.embedder)
    classifier.process_support_set(dataset.train_images, dataset.train_labels)
    predicted, _ = classifier.predict(dataset.test_images)
    print(
        f"\ntrained on every class ({run_dir}, {full.metadata['options']['epochs']} epochs): 1-NN against the "
        f"full train split, {args.dataset} test accuracy {100 * (predicted == dataset.test_labels.numpy()).mean():.2f}%"
    )


if __name__ == "__main__":
    main()
