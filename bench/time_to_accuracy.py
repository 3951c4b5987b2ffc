"""Time to accuracy: wall time of the default training on MNIST 0,1,2 until unseen 7-way 1-shot >= 60%.

    python bench/time_to_accuracy.py --data-dir DIR [--run-dir runs/bench-tta] [--episodes-per-epoch 50]

Trains exactly what ``embed train --classes 0,1,2`` trains (``TrainConfig`` defaults, 30 epochs) and, after
every epoch, scores the model on the core issue's protocol restricted to the unseen classes: 7-way 1-shot
over classes 3-9, all MNIST test queries of those classes, seeded episodes. To keep the probe cheap, its
supports are drawn from a fixed seeded pool of ``--support-pool`` train-split images per class, it fits the
centring on 4096 random training-class images (``train()`` uses all of them, at the end), it runs
``--episodes-per-epoch`` episodes, and it stops once the bar is crossed (``--probe-every-epoch`` keeps it on).
The finished run is scored on the full protocol (supports from the whole train split, ``--episodes``). The
probe never changes the model, and its time is subtracted from the wall clock: the times are training alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine

from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.data.sampling import split_validation
from embedder.evaluation.episodes import evaluate_episodes
from embedder.models.embedder import Embedder
from embedder.runs.run import Run
from embedder.training.trainer import train

UNSEEN = list(range(3, 10))
BAR = 0.60


class Probe:
    """``on_epoch_end`` hook: unseen 7-way 1-shot accuracy of the model as it is, timed."""

    def __init__(
        self, dataset: Dataset, config: TrainConfig, episodes: int, support_pool: int, every_epoch: bool
    ) -> None:
        self.episodes, self.seconds, self.curve = episodes, 0.0, []
        self.every_epoch = every_epoch
        self.started = time.perf_counter()  # reset just before train() starts
        rng = np.random.default_rng(0)
        rows, _ = split_validation(dataset.train_labels, config.classes, config.val_fraction, config.seed)
        self.centre_images = dataset.train_images[np.sort(rng.choice(rows, size=min(4096, len(rows)), replace=False))]
        train_labels, test_labels = dataset.train_labels.numpy(), dataset.test_labels.numpy()
        support = np.sort(
            np.concatenate(
                [rng.choice(np.flatnonzero(train_labels == c), size=support_pool, replace=False) for c in UNSEEN]
            )
        )
        query = np.isin(test_labels, UNSEEN)
        self.support_images, self.support_labels = dataset.train_images[support], train_labels[support]
        self.query_images, self.query_labels = dataset.test_images[query], test_labels[query]

    def __call__(self, epoch: int, embedder: Embedder) -> None:
        if not self.every_epoch and any(mean >= BAR for _, mean, _, _ in self.curve):
            return
        started = time.perf_counter()
        was_training = embedder.model.training  # embedding puts it in eval mode; restored below
        embedder.fit_centering(self.centre_images)  # this epoch's embedder is a fresh object: train() is unaffected
        support, query = embedder.embed(self.support_images), embedder.embed(self.query_images)
        embedder.model.train(was_training)
        result = evaluate_episodes(
            support, self.support_labels, query, self.query_labels, UNSEEN, shots=1, episodes=self.episodes, seed=0
        )
        self.seconds += time.perf_counter() - started
        self.curve.append((epoch, result.mean, result.ci95, time.perf_counter() - self.seconds))
        print(
            f"  probe after epoch {epoch}: unseen 7-way 1-shot {100 * result.mean:.1f}% "
            f"({self.curve[-1][3] - self.started:.0f} s of training so far; "
            f"probe {time.perf_counter() - started:.0f} s)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", default="runs/bench-tta")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="default: the CLI's default")
    parser.add_argument("--episodes-per-epoch", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=200, help="episodes scoring the finished run")
    parser.add_argument("--support-pool", type=int, default=500, help="train images per class for probe supports")
    parser.add_argument("--probe-every-epoch", action="store_true", help="keep probing after the bar is crossed")
    args = parser.parse_args()

    dataset = load_dataset("mnist", args.data_dir)
    config = TrainConfig(
        classes=[0, 1, 2], data_dir=args.data_dir, run_dir=args.run_dir, device=args.device, epochs=args.epochs
    )
    probe = Probe(dataset, config, args.episodes_per_epoch, args.support_pool, args.probe_every_epoch)
    print(f"machine: {machine()}; device {args.device}")
    print(f"embed train --classes 0,1,2 (defaults, {config.epochs} epochs), probed until the bar\n", flush=True)
    started = probe.started = time.perf_counter()  # the curve's clock readings count from here
    train(config, force=True, progress=False, dataset=dataset, on_epoch_end=probe, log=lambda m: print(m, flush=True))
    total = time.perf_counter() - started - probe.seconds

    run = Run.load(args.run_dir)
    final = evaluate_episodes(
        run.embedder.embed(dataset.train_images),
        dataset.train_labels.numpy(),
        run.embedder.embed(dataset.test_images),
        dataset.test_labels.numpy(),
        UNSEEN,
        shots=1,
        episodes=args.episodes,
        seed=0,
    )
    print(f"\n| epoch | wall time (s, probe excluded) | unseen 7-way 1-shot, {args.episodes_per_epoch} episodes |")
    print("|---|---|---|")
    for epoch, mean, ci95, clock in probe.curve:
        print(f"| {epoch} | {clock - started:.0f} | {100 * mean:.1f} ± {100 * ci95:.1f} |")
    crossed = next(((e, c - started) for e, m, _, c in probe.curve if m >= BAR), None)
    print()
    if crossed:
        print(f"bar {100 * BAR:.0f}% first crossed after epoch {crossed[0]}: {crossed[1]:.0f} s of training")
    else:
        print(f"bar {100 * BAR:.0f}% not crossed by the per-epoch probe")
    print(
        f"full default training: {total:.0f} s wall (probe's {probe.seconds:.0f} s excluded; includes data "
        f"loading, validation, checkpoints and the final index); finished run, {args.episodes} episodes: "
        f"unseen 7-way 1-shot {100 * final.mean:.1f} ± {100 * final.ci95:.1f}%"
    )


if __name__ == "__main__":
    main()
