"""Classes the pool has never seen, enrolled from one image: does the run's pool cost them anything?

    python examples/draw_symbols.py /tmp/symbols
    python bench/pool_enrol_unseen.py --run-dir RUN --folder /tmp/symbols --episodes 100

``RUN`` is a run with a pool (``embed pool rest`` on an MNIST run: a pool of digits, no symbol). Each episode
enrols one image of each class of ``--folder`` (its train split) into a copy of the run's index, beside every
class the run knows, and labels the folder's test images: by the nearest support, and by the run's pool method
(the enrolled classes refined over the digits' pool, within the run's checked setting). Mean over seeded episodes,
with the paired difference and its 95% interval.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from bench.common import machine
from embedder.data.datasets import load_dataset
from embedder.fewshot.classifiers import make_classifier
from embedder.index.support_index import SupportIndex
from embedder.runs.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    run = Run.load(args.run_dir)
    if run.pool is None:
        raise SystemExit(f"{args.run_dir} has no pool: `embed pool rest --run-dir {args.run_dir}` first")
    data = load_dataset(f"folder:{args.folder}")
    offset = max(run.index.classes) + 1  # the folder's classes after every class the run knows
    sx, sy = run.embedder.embed(data.train_images), data.train_labels.numpy() + offset
    qx, qy = run.embedder.embed(data.test_images), data.test_labels.numpy() + offset
    print(f"# {args.run_dir} + one image of each of {len(data.classes)} classes of {args.folder}; {machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip
    print(f"# pool: {run.metadata['pool']['description']}; check: {run.metadata['pool']['decision']['reason']}")
    rng, scores = np.random.default_rng(0), np.empty((args.episodes, 2))
    for e in range(args.episodes):
        chosen = np.array([rng.choice(np.flatnonzero(sy == c)) for c in np.unique(sy)])
        index = SupportIndex.from_bytes(run.index.to_bytes())
        index.add(sx[chosen], sy[chosen])
        for j, method in enumerate(("nn", "pool")):
            classifier = make_classifier(method, run.embedder, index, **run.classifier_options(method, supports=True))
            scores[e, j] = float((classifier.predict_embeddings(qx)[0] == qy).mean())
    gain = scores[:, 1] - scores[:, 0]
    half = 1.96 * gain.std(ddof=1) / math.sqrt(len(gain))
    print("| method | 1-shot accuracy on the folder's test images (%) |\n|---|---|")
    print(f"| nearest support | {100 * scores[:, 0].mean():.1f} |")
    print(f"| pool (the run's) | {100 * scores[:, 1].mean():.1f} |")
    low, high = 100 * (gain.mean() - half), 100 * (gain.mean() + half)
    print(f"| difference | {100 * gain.mean():+.1f} [{low:+.1f}, {high:+.1f}] |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
