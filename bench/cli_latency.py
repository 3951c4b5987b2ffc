"""CLI latency: ``embed --help``, a usage error, ``adder predict``, ``embed predict`` and ``embed enroll`` of one
image, against ``import torch``.

    python bench/cli_latency.py --data-dir DIR [--run-dir RUN] [--image PNG] [--repeats 5]

Each command runs ``--repeats`` times as a fresh process, round-robin (so a noisy machine slows all alike);
the table shows the median wall time. Goals: ``--help`` and usage errors under 0.5 s; ``adder predict``,
``embed predict`` and ``embed enroll`` of one image within 1.5x of a bare ``python -c "import torch"``
(``embed enroll`` writes into a copy of the run, one more shot each time). Without ``--run-dir`` the benchmark
first makes a small run through the CLI (``embed train --dataset digits --classes 0-4 --epochs 2``, no data
download) and saves a test digit as a PNG; the adder is trained by an untimed first ``adder predict``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

BIN = Path(sys.executable).parent


def run_once(argv: list[str], expect: int | None = 0) -> float:
    """Seconds from spawn to exit of one process; checks its exit code."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if expect is not None and proc.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}, expected {expect}:\n{proc.stderr}")
    return seconds


def make_run(workdir: Path) -> tuple[Path, Path]:
    """A small digits run made through the CLI, and one of its test digits saved as a PNG."""
    run_dir = workdir / "run"
    subprocess.run(
        [BIN / "embed", "train", "--dataset", "digits", "--classes", "0-4", "--epochs", "2", "--run-dir", run_dir],
        check=True,
        capture_output=True,
    )
    from PIL import Image

    from embedder.data.datasets import load_dataset

    image = workdir / "digit.png"
    Image.fromarray(load_dataset("digits").test_images[0].numpy()).save(image)
    return run_dir, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a trained run for adder predict (default: make a small one)")
    parser.add_argument("--image", help="the image for adder predict (default: a digits test image)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", help="MNIST root for the --classes usage error (sets $TRIPLETSHOT_DATA)")
    args = parser.parse_args()
    if args.data_dir:
        os.environ["TRIPLETSHOT_DATA"] = args.data_dir  # inherited by the timed processes

    scratch = tempfile.TemporaryDirectory(prefix="tripletshot-cli-")
    if args.run_dir and args.image:
        run_dir, image = Path(args.run_dir), Path(args.image)
    else:
        made_run, made_image = make_run(Path(scratch.name))
        run_dir, image = Path(args.run_dir or made_run), Path(args.image or made_image)
    enroll_dir = Path(scratch.name) / "enroll-run"
    shutil.copytree(run_dir, enroll_dir)
    python = sys.executable
    commands = {
        'python -c "pass"': ([python, "-c", "pass"], 0),
        'python -c "import torch"': ([python, "-c", "import torch"], 0),
        'python -c "import torch, faiss, pytorch_metric_learning"': (
            [python, "-c", "import torch, faiss, pytorch_metric_learning"],
            0,
        ),
        "embed --help": ([BIN / "embed", "--help"], 0),
        "embed train --epochs x (usage error, click)": ([BIN / "embed", "train", "--epochs", "x"], 2),
        # --classes is checked against the dataset's labels, so this one loads torch and MNIST first.
        "embed train --classes a (usage error, checked before torch is imported)": (
            [BIN / "embed", "train", "--classes", "a"],
            2,
        ),
        "adder --help": ([BIN / "adder", "--help"], 0),
        "adder predict image.png 7": ([BIN / "adder", "predict", image, "7", "--no-reject", "--run-dir", run_dir], 0),
        "embed predict image.png": ([BIN / "embed", "predict", image, "--run-dir", run_dir], 0),
        "embed enroll --label x image.png": (
            [BIN / "embed", "enroll", "--label", "x", image, "--run-dir", enroll_dir],
            0,
        ),
    }
    run_once([str(a) for a in (BIN / "adder", "train", "--run-dir", run_dir)])  # untimed: predict loads this adder
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (argv, expect) in commands.items():
            times[name].append(run_once([str(a) for a in argv], expect))
    torch_s = statistics.median(times['python -c "import torch"'])

    print(f"machine: {machine()}")
    print(f"median of {args.repeats} fresh processes each, round-robin\n")
    print('| command | median (s) | min (s) | vs python -c "import torch" |')
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} | {min(values):.2f} | {median / torch_s:.2f}x |")
    usage = max(statistics.median(times[k]) for k in ("embed --help", "embed train --epochs x (usage error, click)"))
    print(
        f"\ngoals: --help, click usage error < 0.5 s: {'met' if usage < 0.5 else 'NOT met'} ({usage:.2f} s, the slower)"
    )
    for name in ("adder predict image.png 7", "embed predict image.png", "embed enroll --label x image.png"):
        ratio = statistics.median(times[name]) / torch_s
        print(f"{name} <= 1.5x import torch: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")
    scratch.cleanup()


if __name__ == "__main__":
    main()
