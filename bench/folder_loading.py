"""``--dataset folder:PATH`` loading speed: 10,000 small PNGs decoded cold, then read back from the cache.

    python bench/folder_loading.py [--images 10000] [--classes 10] [--size 32] [--rounds 3]

Writes its own PNGs (a dark stroke at a random angle and place on white, one folder per class) into a
temporary folder, and a data root for the cache beside them; both are deleted at the end. "Cold" is a
load with no cache (every file opened and decoded by ``images.load_image`` in threads, then the cache
written); "cached" is the same call again, which stats every file, hashes the list and reads one ``.npz``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.common import machine
from embedder.data.datasets import load_dataset


def write_pngs(root: Path, images: int, classes: int, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.new("L", (size, size), 255)
        angle, (x, y) = rng.uniform(0, np.pi), rng.uniform(size * 0.3, size * 0.7, 2)
        dx, dy = np.cos(angle) * size * 0.3, np.sin(angle) * size * 0.3
        ImageDraw.Draw(picture).line([(x - dx, y - dy), (x + dx, y + dy)], fill=0, width=max(2, size // 10))
        picture.save(folder / f"{i:05d}.png")


def timed_load(name: str, data_root: Path) -> float:
    started = time.perf_counter()
    dataset = load_dataset(name, data_root)
    seconds = time.perf_counter() - started
    assert not dataset.warnings, dataset.warnings  # every file decodes, and the cache is written
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=32, help="side of each PNG in pixels")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    scratch = Path(tempfile.mkdtemp(prefix="folder-bench-"))
    try:
        write_pngs(scratch / "images", args.images, args.classes, args.size)
        name = f"folder:{scratch / 'images'}"
        cold, cached = [], []
        for r in range(args.rounds):  # alternate, so both see the same machine load
            cache = scratch / f"data{r}"
            cold.append(timed_load(name, cache))
            cached.append(timed_load(name, cache))
        n = args.images
        print(f"\n{n} PNGs of {args.size}x{args.size}, {args.classes} classes, median of {args.rounds} rounds\n")
        print("| load | seconds | images/s |")
        print("|---|---|---|")
        for label, times in (("cold (decode in threads, write the cache)", cold), ("cached", cached)):
            seconds = statistics.median(times)
            print(f"| {label} | {seconds:.2f} | {n / seconds:,.0f} |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
