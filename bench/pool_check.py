"""The pool check alone on runs that have a pool, at several episode counts: which setting it picks, and why.

    python bench/pool_check.py RUN [RUN ...] --episodes 100,300

Reads each run's held-out labelled images as ``embed pool`` does (no test image) and replays
:func:`embedder.fewshot.pool.choose_refinement` over the run's stored pool and anchors.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from embedder.fewshot.pool import choose_refinement
from embedder.runs.pool import check_images, class_mass
from embedder.runs.run import Run, run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", default="100,300")
    args = parser.parse_args()
    for path in args.runs:
        run = Run.load(path)
        if run.pool is None:
            raise SystemExit(f"{path} has no pool: `embed pool rest --run-dir {path}` first")
        dataset, config = run.load_dataset(), run_config(run.metadata)
        held = check_images(run.embedder, dataset, config, np.asarray(run.metadata["index"]["support_rows"]))
        for episodes in (int(e) for e in args.episodes.split(",")):
            decision = choose_refinement(held, run.pool.anchors, run.pool.points, "held-out images",
                                         class_mass(dataset, config), episodes=episodes)  # fmt: skip
            print(f"{path}, {episodes} episodes: {decision.reason}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
