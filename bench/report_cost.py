"""What ``embed report`` costs on top of ``embed eval``: the same evaluation, plus t-SNE and the figures.

    python bench/report_cost.py --run-dir RUN [--data-dir DIR] [--repeats 2]

Both commands run as fresh processes on the same run (its dataset's full test split: 10,000 images for
MNIST), alternating, ``--repeats`` times each, with ``--quiet`` and the same ``--episodes``; the table shows
the median wall time and the ratio. The report's figures go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

BIN = Path(sys.executable).parent


def seconds(argv: list[str]) -> float:
    """Wall time of one process from spawn to exit; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a trained run (e.g. MNIST classes 0,1,2)")
    parser.add_argument("--data-dir", help="data root (sets $TRIPLETSHOT_DATA; default: where the run was trained)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    if args.data_dir:
        os.environ["TRIPLETSHOT_DATA"] = args.data_dir  # inherited by the timed processes
    common = ["--run-dir", args.run_dir, "--episodes", str(args.episodes), "--device", "cpu", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="tripletshot-report-") as out:
        commands = {
            "embed eval --json": [str(BIN / "embed"), "eval", "--json", *common],
            "embed report": [str(BIN / "embed"), "report", "--out", out, *common],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, argv in commands.items():
                times[name].append(seconds(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"machine: {machine()}")
    print(f"{args.run_dir}, {args.episodes} episodes; median of {args.repeats} fresh processes each, alternating\n")
    print("| command | median (s) | all runs (s) | vs embed eval |")
    print("|---|---|---|---|")
    for name, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"| `{name}` | {medians[name]:.1f} | {runs} | {medians[name] / medians['embed eval --json']:.2f}x |")


if __name__ == "__main__":
    main()
