"""What a pool costs a prediction and an enrolment, in process: the same run with and without its pool.

    embed pool rest --run-dir WITH        # a copy of a run, given a pool; WITHOUT: the run as it was
    python bench/pool_latency.py --with WITH --without WITHOUT --image symbols/star-1.png --query symbols/star-4.png

A new class is enrolled from ``--image`` into a copy of each run (timed: ``embedder.enrol``, the commit included),
then ``--query`` is predicted ``--repeat`` times with the run loaded once (``embedder.predict``: the one-shot class
refined over the pool on each call, as a server worker does). Prints the medians and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from embedder import PredictConfig, Run, enrol, load_image, predict


def measure(run_dir: str, image: torch.Tensor, query: torch.Tensor, repeat: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(run_dir, Path(tmp) / "run"))
        started = time.perf_counter()
        enrol(copy, {"new": image})
        enrolled = time.perf_counter() - started
        run, times = Run.load(copy), []
        for _ in range(repeat):
            started = time.perf_counter()
            predict(run, query, ["query"], PredictConfig(), log=lambda _: None)
            times.append(time.perf_counter() - started)
    return enrolled, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with", dest="pooled", required=True)
    parser.add_argument("--without", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    image, query = load_image(args.image).unsqueeze(0), load_image(args.query).unsqueeze(0)
    rows = {name: measure(path, image, query, args.repeat) for name, path in (("without", args.without),
                                                                              ("with", args.pooled))}  # fmt: skip
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {torch.get_num_threads()} threads")
    print("| run | enrol one image (s) | predict one image, p50 (ms) |\n|---|---|---|")
    for name, (enrolled, p50) in rows.items():
        print(f"| {name} a pool | {enrolled:.2f} | {1000 * p50:.1f} |")
    ratios = [rows["with"][i] / rows["without"][i] for i in (0, 1)]
    print(f"| ratio with / without | {ratios[0]:.2f} | {ratios[1]:.2f} |")


if __name__ == "__main__":
    main()
