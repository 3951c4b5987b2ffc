"""Ablation of the training recipe, chosen without MNIST digits 3-9 (selected on Fashion-MNIST and leave-one-class-out).

    python bench/ablation.py --protocol select [--epochs 10] [--variants base,cw0,...] [--data-dir DIR]
    python bench/ablation.py --protocol test --variants base,... [--data-dir DIR]
    python bench/ablation.py --protocol index --run-dir RUN [--dataset fashion-mnist]

``select`` scores each variant twice, never touching MNIST 3-9 nor any test split:

- **fashion**: train on Fashion-MNIST 0,1,2; 7-way 1-shot episodes of the seven other classes, supports and
  queries from two disjoint halves of their *train* split.
- **loco** (leave one class out): for each of MNIST 0, 1 and 2, train on the other two; 3-way 1-shot
  episodes of 0,1,2 from two disjoint halves of their train split. The mean over the three folds is
  reported, and beside it the held-out classes' own accuracy.

Each is scored with the run's embedding as trained (``cl2n``: centred on the training classes, then
L2-normalised) and with plain L2 normalisation (``l2``). ``test`` trains each variant on MNIST 0,1,2 with
its full schedule and reports the benchmark protocol of ``bench/oneshot.py`` (test queries, train-split
supports, 200 episodes). Runs are kept in ``--runs-dir`` and reused when they exist.

``index`` compares rules for the index a run saves (:mod:`embedder.index.supports`) on a trained run: K random
images of each class, the K images nearest the class's k-means centroids, or the centroids themselves.
Every class's train split is halved: the rule draws from one half, and up to 1000 images of each class
from the other half are the queries (1-NN, 3 seeds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.errors import RunError
from embedder.evaluation.episodes import evaluate_episodes
from embedder.index.supports import class_centroids, nearest_rows
from embedder.runs.run import Run
from embedder.training.trainer import train

# Each variant: the TrainConfig options it changes from the defaults.
# Each variant: the TrainConfig options it changes. The screening changed one thing at a time from v0.2's
# recipe (margin 0.2); its pick, margin 0.4, is now the default ("default").
# Issue 19 made class contrast the default objective: the triplet variants name the triplet loss themselves.
TRIPLET = {"loss": "triplet", "augmentation": "strokes"}
V02 = {**TRIPLET, "margin": 0.2}
VARIANTS: dict[str, dict[str, Any]] = {
    "v0.2": V02,
    "cw0": {**V02, "class_weight": 0.0},
    "cw1": {**V02, "class_weight": 1.0},
    "aug0.5": {**V02, "augment": 0.5},
    "aug1.5": {**V02, "augment": 1.5},
    "margin0.4": {**TRIPLET, "margin": 0.4},
    "margin0.6": {**TRIPLET, "margin": 0.6},
    "width48": {**V02, "width": 48},
    "margin0.4+aug1.5": {**TRIPLET, "margin": 0.4, "augment": 1.5},
    "triplet": TRIPLET,  # the default before 0.4
    "multi": {"descriptor": "multi"},
    "default": {},
}
TRAINED = [0, 1, 2]


def trained_run(run_dir: Path, dataset: Dataset, classes: list[int], options: dict[str, Any]) -> Run:
    """The run in ``run_dir`` if one is there, else a fresh CPU training of ``classes`` with ``options``."""
    try:
        return Run.load(run_dir)
    except (RunError, FileNotFoundError):
        pass
    config = TrainConfig(classes=classes, dataset=dataset.name, run_dir=str(run_dir), device="cpu", **options)
    train(config, force=True, progress=False, log=lambda _: None, dataset=dataset)
    return Run.load(run_dir)


def halves(labels: np.ndarray, classes: list[int], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint seeded halves of the train-split rows of ``classes``: a support pool and a query pool."""
    rng = np.random.default_rng(seed)
    support, query = [], []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(labels == c))
        support.append(rows[: len(rows) // 2])
        query.append(rows[len(rows) // 2 :])
    return np.concatenate(support), np.concatenate(query)


def embeddings(run: Run, dataset: Dataset, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The rows' train-split embeddings, as the run makes them (cl2n) and L2-normalised only (l2)."""
    features = run.embedder.features(dataset.train_images[rows]).cpu()
    return {
        "cl2n": run.embedder.centering(features).numpy(),
        "l2": F.normalize(features, dim=1).numpy(),
    }


def score(run: Run, dataset: Dataset, classes: list[int], episodes: int) -> dict[str, Any]:
    """1-shot accuracy over ``classes``, overall and per class, for each post-processing."""
    labels = dataset.train_labels.numpy()
    support, query = halves(labels, classes)
    s, q = embeddings(run, dataset, support), embeddings(run, dataset, query)
    return {
        post: evaluate_episodes(s[post], labels[support], q[post], labels[query], classes, 1, episodes, seed=0)
        for post in s
    }


def select(name: str, options: dict[str, Any], args: argparse.Namespace) -> str:
    options = {**options, **({"epochs": args.epochs} if args.epochs else {})}
    tag = f"{name}-e{args.epochs}" if args.epochs else name
    started = time.perf_counter()
    fashion = load_dataset("fashion-mnist", args.data_dir)
    run = trained_run(args.runs_dir / "fashion" / tag, fashion, TRAINED, options)
    unseen = [c for c in fashion.classes if c not in TRAINED]
    fashion_scores = score(run, fashion, unseen, args.episodes)
    mnist = load_dataset("mnist", args.data_dir)
    folds = {}
    for held_out in TRAINED:
        fold_run = trained_run(
            args.runs_dir / "loco" / f"{tag}-h{held_out}", mnist, [c for c in TRAINED if c != held_out], options
        )
        folds[held_out] = score(fold_run, mnist, TRAINED, args.episodes)
    cells = [f"{100 * fashion_scores[p].mean:.1f}" for p in ("cl2n", "l2")]
    for post in ("cl2n", "l2"):
        overall = np.mean([folds[h][post].mean for h in TRAINED])
        own = np.mean([folds[h][post].per_class[h][0] for h in TRAINED])
        cells.append(f"{100 * overall:.1f} ({100 * own:.1f})")
    seconds = time.perf_counter() - started
    return f"| {name} | {options or 'defaults'} | " + " | ".join(cells) + f" | {seconds:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("select", "test", "index"), default="select")
    parser.add_argument("--run-dir", type=Path, help="the run whose index rules are compared (index only)")
    parser.add_argument("--dataset", default="fashion-mnist", help="the run's dataset (index only)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, help="a shorter schedule for screening (select only)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--data-dir")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--all-classes", action="store_true", help="test: train on 0-9, 1-NN on the train split")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    if args.protocol == "select":
        print(f"selection protocol, 1-shot accuracy (%), {args.episodes} episodes, train-split pools only")
        print("| variant | options | fashion unseen 7-way, cl2n | l2 | loco 3-way, cl2n (held-out) | l2 | seconds |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            print(select(name, VARIANTS[name], args), flush=True)
    elif args.protocol == "test":
        test(names, args)
    else:
        index_rules(args)


def all_classes(names: list[str], mnist: Dataset, args: argparse.Namespace) -> None:
    """Each variant trained on all ten digits: 1-NN of the test set against the whole train split."""
    from embedder.fewshot.classifiers import NearestNeighbor

    print("MNIST, trained on every class: 1-NN accuracy of the test set against the full train split")
    for name in names:
        run = trained_run(args.runs_dir / "mnist" / f"{name}-all", mnist, mnist.classes, VARIANTS[name])
        classifier = NearestNeighbor(run.embedder)
        classifier.process_support_set(mnist.train_images, mnist.train_labels)
        correct = classifier.predict(mnist.test_images)[0] == mnist.test_labels.numpy()
        print(f"| {name} ({run.metadata['train_seconds']:.0f} s) | {100 * correct.mean():.2f}% |", flush=True)


def rule_supports(rule: str, k: int, pool: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The index one rule makes from the pool's embeddings: its vectors and their labels."""
    rng, vectors, vector_labels = np.random.default_rng(seed), [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if rule == "random":
            chosen = pool[rng.choice(rows, k, replace=False)]
        else:
            centroids = class_centroids(pool[rows], k, seed)
            chosen = centroids if rule == "centroids" else pool[rows[nearest_rows(pool[rows], centroids)]]
        vectors.append(chosen)
        vector_labels += [c] * len(chosen)
    return np.concatenate(vectors), np.asarray(vector_labels)


def index_rules(args: argparse.Namespace) -> None:
    run, dataset = Run.load(args.run_dir), load_dataset(args.dataset, args.data_dir)
    labels = dataset.train_labels.numpy()
    support, query = halves(labels, dataset.classes)
    query = np.concatenate([query[labels[query] == c][:1000] for c in dataset.classes])
    pool, queries = run.embedder.embed(dataset.train_images[support]), run.embedder.embed(dataset.train_images[query])
    truth, unseen = labels[query], ~np.isin(labels[query], run.trained_classes)
    print(f"{args.dataset}, run {args.run_dir}: 1-NN accuracy (%) of train-split queries, mean of 3 seeds")
    print("| vectors per class | rule | all classes | unseen classes |\n|---|---|---|---|")
    for k in (1, 5, 20, 32, 50):
        for rule in ("random", "nearest images", "centroids"):
            correct = []
            for seed in range(3):
                vectors, vector_labels = rule_supports(rule, k, pool, labels[support], seed)
                predicted = vector_labels[np.argmax(queries @ vectors.T, axis=1)]
                correct.append(predicted == truth)
            hits = np.mean(correct, axis=0)
            print(f"| {k} | {rule} | {100 * hits.mean():.1f} | {100 * hits[unseen].mean():.1f} |", flush=True)


def test(names: list[str], args: argparse.Namespace) -> None:
    """Each variant trained on MNIST 0,1,2 with its full schedule, on the benchmark protocol."""
    from oneshot import report, settings  # bench/ is the script's folder, so its siblings import

    mnist = load_dataset("mnist", args.data_dir)
    if args.all_classes:
        return all_classes(names, mnist, args)
    columns = " | ".join(name for name, _, _ in settings(mnist.classes))
    print(f"MNIST test queries, train-split supports, {args.episodes} episodes, mean ± 95% CI (%)")
    print(f"| variant | {columns} |\n|---|---|---|---|")
    for name in names:
        run = trained_run(args.runs_dir / "mnist" / name, mnist, TRAINED, VARIANTS[name])
        train_x, test_x = run.embedder.embed(mnist.train_images), run.embedder.embed(mnist.test_images)
        report(f"{name} ({run.metadata['train_seconds']:.0f} s)", train_x, test_x, mnist, args.episodes)


if __name__ == "__main__":
    main()
