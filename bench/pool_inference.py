"""Selection screen for the pool at inference (``--method pool``): which refinement, and is the per-run check safe.

    python bench/pool_inference.py --domain mnist --splits 3,4,5/6,7,8/3,7,9          # MNIST train split halves
    python bench/pool_inference.py --domain fashion-mnist --splits 0,1,2/3,4,5/6,7,8   # clothes
    python bench/pool_inference.py --domain folder:/tmp/glyphs --train-scripts abcde --ways 20   # glyphs

Only train splits: MNIST's (and Fashion's) train split is cut in two seeded halves (bench/unlabelled.py): the
first trains, gives supports and the pool; the second gives queries. For each split of classes one strict run
trains (the defaults, about ``--steps`` steps; reused from ``--run-root`` when there), then every method scores
the same seeded 1-shot episodes of the classes it did not train on, in three scenarios:

- ``rest``: the pool is the first half's images of every untrained class; every one of them is an episode class;
- ``distractors``: the same pool, but episodes of only ``--named`` of those classes: the rest are nobody's;
- ``whole``: the pool is the whole first half, the trained classes' images included.

Glyphs (a ``folder:`` of rendered scripts) train on ``--train-scripts``; their pool is every held-out class's train
images, and each episode names ``--ways`` of them: a pool full of classes nobody named.

Methods: the nearest support; the nearest support mean; naive soft k-means (no anchors); each setting of
:data:`embedder.fewshot.pool.GRID` with the trained classes as anchors (its trust cosines from the run's held-out
images); and ``check``, the setting the per-run
check (:func:`embedder.fewshot.pool.choose_refinement`) picks from the run's held-out images, as ``embed pool``
does. ``summary`` rows compare the pool kept whole with its 1,024 weighted centroids.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import machine
from bench.unlabelled import halves
from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.data.sampling import split_validation
from embedder.evaluation.episodes import evaluate_episodes
from embedder.fewshot.pool import (
    GRID,
    SCREENED,
    PoolPoints,
    Refinement,
    choose_refinement,
    settings_for,
    summarise_pool,
)
from embedder.runs.run import Run
from embedder.training.trainer import train


def train_split(data: Dataset, domain: str, trained: list[int], run_dir: Path, steps: int, m: int) -> Run:
    if not (run_dir / "run.json").exists():
        per_epoch = math.ceil(0.9 * int(np.isin(data.train_labels.numpy(), trained).sum()) / (min(len(trained), 8) * m))
        epochs = max(1, round(steps / per_epoch))
        config = TrainConfig(classes=trained, dataset=domain, run_dir=str(run_dir), device="cpu", epochs=epochs,
                             m_per_class=m)  # fmt: skip
        started = time.perf_counter()
        train(config, force=True, progress=False, log=lambda _: None, dataset=data)
        print(f"# trained {run_dir} on {len(trained)} classes, {epochs} epochs: {time.perf_counter() - started:.0f} s")
    return Run.load(run_dir)


def held_out_rows(data: Dataset, run: Run) -> np.ndarray:
    """The run's held-out labelled images, as ``embed pool`` finds them: its trained classes' validation share and
    its validation classes' images."""
    options = run.metadata["options"]
    _, held = split_validation(data.train_labels, run.trained_classes, options["val_fraction"], options["seed"])
    val = np.flatnonzero(np.isin(data.train_labels.numpy(), run.metadata.get("val_classes") or []))
    return np.sort(np.concatenate([held, val]))


def anchors_of(x: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([x[y == c].mean(axis=0) for c in classes]) if classes else np.empty((0, x.shape[1]))
    return np.asarray(classes, np.int64), (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def score(sx, sy, qx, qy, classes, method, options, episodes, draws) -> float:
    means = []
    for seed in range(draws):
        chosen = classes
        if draws > 1 or len(classes) > draws_ways[0]:
            chosen = sorted(np.random.default_rng(seed).choice(classes, draws_ways[0], replace=False).tolist())
        means.append(evaluate_episodes(sx, sy, qx, qy, chosen, 1, episodes, seed, method, options=options).mean)
    return 100 * float(np.mean(means))


draws_ways = [10]  # the episode's ways when classes are drawn (set from --ways)


def methods(pool: PoolPoints, anchors, decision, grid) -> dict[str, tuple[str, dict]]:
    table = {"nn": ("nn", {}), "prototype": ("prototype", {})}
    table["naive"] = ("pool", {"pool": pool, "setting": Refinement()})
    table["anchored, no trust region"] = ("pool", {"pool": pool, "anchors": anchors, "setting": Refinement()})
    for setting in grid:
        table[setting.describe()] = ("pool", {"pool": pool, "anchors": anchors, "setting": setting})
    table["check"] = ("pool", {"pool": pool, "anchors": anchors, "setting": decision.setting})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="mnist")
    parser.add_argument("--splits", default="3,4,5/6,7,8/3,7,9", help="slash-separated class lists")
    parser.add_argument("--train-scripts", help="folder domains: first letters of the training scripts' folders")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ways", type=int, default=10, help="drawn ways where there are more classes")
    parser.add_argument("--named", type=int, default=4, help="named classes of the distractors scenario")
    parser.add_argument("--per-class", type=int, default=100, help="queries and support candidates a class")
    parser.add_argument("--run-root", default="runs/bench-pool")
    args = parser.parse_args()
    draws_ways[0] = args.ways
    folder = args.domain.startswith("folder:")
    data = load_dataset(args.domain) if folder else halves(load_dataset(args.domain))
    print(f"# {args.domain}{'' if folder else ' train split halves'}; {machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip
    if folder:
        splits = [[c for c, n in enumerate(data.class_names) if n[0] in args.train_scripts]]
    else:
        splits = [[int(c) for c in s.split(",")] for s in args.splits.split("/")]
    for trained in splits:
        screen_split(data, args, trained, folder)


def screen_split(data: Dataset, args: argparse.Namespace, trained: list[int], folder: bool) -> None:
    name = "-".join(map(str, trained)) if len(trained) < 8 else f"{len(trained)}classes"
    run = train_split(data, args.domain, trained, Path(args.run_root) / f"{args.domain.replace('/', '_')}-{name}",
                      args.steps, args.m)  # fmt: skip
    ty, qy_all = data.train_labels.numpy(), data.test_labels.numpy()
    started = time.perf_counter()
    tx = run.embedder.embed(data.train_images)
    qx_all = run.embedder.embed(data.test_images)
    unseen = [c for c in data.classes if c not in trained and c not in (run.metadata.get("val_classes") or [])]
    rng = np.random.default_rng(1)
    support_rows = np.concatenate([rng.permutation(np.flatnonzero(ty == c))[: args.per_class] for c in data.classes])
    query_rows = np.concatenate([rng.permutation(np.flatnonzero(qy_all == c))[: args.per_class] for c in data.classes])
    sx, sy, qx, qy = tx[support_rows], ty[support_rows], qx_all[query_rows], qy_all[query_rows]
    anchors = anchors_of(tx, ty, trained)
    held = held_out_rows(data, run)
    grid = settings_for((tx[held], ty[held]), GRID + (SCREENED,))
    rest = summarise_pool(tx[np.isin(ty, unseen)])
    scenarios = {"rest": (rest, unseen)}
    if not folder:
        scenarios["distractors"] = (rest, unseen[: args.named])
        scenarios["whole"] = (summarise_pool(tx), unseen)
    print(f"\n## trained on {','.join(data.class_names[c] for c in trained)}; embedded in "
          f"{time.perf_counter() - started:.0f} s; {len(held)} held-out labelled images for the check")  # fmt: skip
    for scenario, (pool, classes) in scenarios.items():
        mass = float(np.median(np.unique(ty[np.isin(ty, trained)], return_counts=True)[1]))
        decision = choose_refinement((tx[held], ty[held]), anchors, pool, "the run's held-out images", mass)
        print(f"\n### {scenario}: {len(classes)} named classes, pool of {pool.images:,} images "
              f"({len(pool.vectors)} points); check: {decision.reason}")  # fmt: skip
        print("| method | 1-shot accuracy (%) |\n|---|---|")
        draws = 3 if len(classes) > args.ways else 1
        for label, (method, options) in methods(pool, anchors, decision, grid).items():
            acc = score(sx, sy, qx, qy, classes, method, options, args.episodes, draws)
            print(f"| {label} | {acc:.1f} |", flush=True)
        if scenario == "rest" and not folder:
            whole = PoolPoints(tx[np.isin(ty, unseen)], np.ones(int(np.isin(ty, unseen).sum()), np.float32))
            options = {"pool": whole, "anchors": anchors, "setting": decision.setting}
            acc = score(sx, sy, qx, qy, classes, "pool", options, args.episodes, draws)
            print(f"| summary: check's setting, the pool kept whole ({whole.images:,} points) | {acc:.1f} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
