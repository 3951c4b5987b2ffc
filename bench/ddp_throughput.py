"""DDP training throughput: ``embed train`` as one process against ``torchrun`` with N processes, on the CPU.

    python bench/ddp_throughput.py --data-dir DIR [--processes 2] [--rounds 2] [--epochs 1]

Each round trains MNIST classes 0,1,2 with the default batch (3 classes x 64 images) for ``--epochs``, once
as a plain ``embed train`` and once under ``torchrun --nproc-per-node N`` (gloo), alternating, into scratch
folders. Images/s = optimizer steps x batch images / the run's ``train_seconds`` (the steps and the
per-epoch checkpoints; validation is off with ``--val-fraction 0``; start-up and the final indexing are not
counted). The cores are shared out explicitly (``OMP_NUM_THREADS``): the single process gets every core,
each of N processes ``cores // N``, so a thread setting inherited from the shell cannot skew the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parent.parent


def images_per_second(processes: int, data_dir: str | None, epochs: int, scratch: Path) -> float:
    run_dir = scratch / f"run{processes}"
    args = ["train", "--classes", "0,1,2", "--epochs", str(epochs), "--val-fraction", "0", "--device", "cpu"]
    args += ["--run-dir", str(run_dir), "--force"] + (["--data-dir", data_dir] if data_dir else [])
    if processes == 1:
        command = [sys.executable, "-m", "cli.embed", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
        command += ["-m", "cli.embed", *args]
    threads = str(max(1, (os.cpu_count() or 1) // processes))  # not left to the shell, nor to torchrun (1 each)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    meta = json.loads((run_dir / "run.json").read_text())["run"]
    options = meta["options"]
    batch = options["m_per_class"] * min(len(options["classes"]), 8)
    return meta["steps_per_epoch"] * epochs * batch / meta["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    cores = os.cpu_count() or 1
    print(f"OpenMP threads: 1 process x {cores}, {args.processes} processes x {max(1, cores // args.processes)} each")
    rows: dict[int, list[float]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            for processes in rows:
                rows[processes].append(images_per_second(processes, args.data_dir, args.epochs, Path(scratch)))
                print(f"  {processes} process(es): {rows[processes][-1]:.0f} images/s", flush=True)
    print("\n| processes | images/s per round | ratio to 1 process (same round) |\n|---|---|---|")
    for processes, values in rows.items():
        ratios = [v / one for v, one in zip(values, rows[1], strict=True)]
        print(f"| {processes} | {' / '.join(f'{v:.0f}' for v in values)} | {' / '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
