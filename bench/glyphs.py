"""The third domain: a run trained with defaults on some scripts' glyphs, scored 20-way 1-shot on
the held-out scripts, against HOG-like, raw pixels and a run trained elsewhere (MNIST 0,1,2) on the same episodes.

    python examples/render_glyphs.py /tmp/glyphs
    python bench/glyphs.py --data folder:/tmp/glyphs --run-dir runs/glyphs \\
        [--train-classes 0-117 | --train-scripts abcde] [--other-run runs/bench] [--set loss=triplet ...] [--skip-train]

By default it trains on the classes of the first five scripts (folder names starting a- to e-: Latin, Greek,
Cyrillic, Armenian, Hebrew) and holds out the other four (Georgian, Cherokee, Runic, Tifinagh).

Supports from the held-out classes' train split, queries from their test split; each episode draws 20 of the
held-out classes and one support of each (``--episodes`` per draw of classes, seeded).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.baselines import hog_features, raw_pixel_features
from bench.oneshot import _option
from embedder.config import TrainConfig
from embedder.data.classes import parse_classes
from embedder.data.datasets import load_dataset
from embedder.evaluation.episodes import evaluate_episodes
from embedder.runs.run import Run
from embedder.training.trainer import train


def held_out_accuracy(train_x, test_x, dataset, held_out: list[int], ways: int, episodes: int) -> float:
    """Mean N-way 1-shot accuracy (%) over seeded draws of ``ways`` held-out classes."""
    means, draws = [], max(1, -(-len(held_out) // ways))
    for seed in range(draws):
        classes = sorted(np.random.default_rng(seed).choice(held_out, ways, replace=False).tolist())
        r = evaluate_episodes(train_x, dataset.train_labels.numpy(), test_x, dataset.test_labels.numpy(), classes,
                              1, episodes, seed=seed)  # fmt: skip
        means.append(r.mean)
    return 100 * float(np.mean(means))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="folder:/tmp/glyphs")
    parser.add_argument("--train-classes", help="class indices; default: those of --train-scripts")
    parser.add_argument("--train-scripts", default="abcde", help="first letters of the training scripts' folders")
    parser.add_argument("--run-dir", default="runs/glyphs")
    parser.add_argument("--other-run", action="append", default=[], help="a run trained elsewhere, scored too")
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a TrainConfig option")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    trained = (
        parse_classes(args.train_classes)
        if args.train_classes
        else [c for c, name in enumerate(dataset.class_names) if name[0] in args.train_scripts]
    )
    held_out = [c for c in dataset.classes if c not in trained]
    if not args.skip_train:
        started = time.perf_counter()
        config = TrainConfig(classes=trained, dataset=args.data, run_dir=args.run_dir, device="cpu",
                             **dict(_option(o) for o in args.set))  # fmt: skip
        train(config, force=True, progress=False, dataset=dataset)
        print(f"training wall time ({len(trained)} classes, {', '.join(args.set) or 'defaults'}, CPU): "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print(f"\n{args.data}: {len(held_out)} held-out classes, {args.ways}-way 1-shot, test queries, train supports")
    print("| features | accuracy (%) |\n|---|---|")
    for name, features in (("raw pixels", raw_pixel_features), ("HOG-like", hog_features)):
        acc = held_out_accuracy(features(dataset.train_images), features(dataset.test_images), dataset, held_out,
                                args.ways, args.episodes)  # fmt: skip
        print(f"| {name} | {acc:.1f} |", flush=True)
    for run_dir in [args.run_dir, *args.other_run]:
        run = Run.load(run_dir)
        train_x, test_x = run.embedder.embed(dataset.train_images), run.embedder.embed(dataset.test_images)
        acc = held_out_accuracy(train_x, test_x, dataset, held_out, args.ways, args.episodes)
        print(f"| run {run_dir} ({run.metadata['dataset']}, {run.metadata['train_seconds']:.0f} s) | {acc:.1f} |")


if __name__ == "__main__":
    main()
