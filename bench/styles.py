"""Known classes in another style: are the digits a user sends accepted, and right?

    python bench/styles.py --run-dir R [--out /tmp/styles] [--per-class 12] [--seed 0]

Three sets of the digits 0-9, made here and written as image files under ``--out`` (never committed), then read
back through :func:`embedder.data.images.load_image` and :func:`embedder.runs.prediction.predict`, as
``embed predict FILE`` reads and answers them:

- ``fonts``: printed digits, each in a random font that covers it, at a random size, rotation, stroke weight,
  blur and speckles (``examples/render_glyphs.py``'s renderer);
- ``small``: scikit-learn's bundled 8x8 digits, saved at 8x8 and scaled up by the loader;
- ``scans``: MNIST test digits as dark ink on grey paper, 112x112, blurred, with sensor noise, as JPEG.

For each set: the share right without rejection, accepted (known) at the run's threshold, and right *and*
accepted. A stand-in for the user images of the issue (scans, small digits, fonts), which are not in the
repository.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from embedder.config import PredictConfig
from embedder.data.images import load_image
from embedder.runs.prediction import predict
from embedder.runs.run import Run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import render_glyphs  # noqa: E402  (examples/ is not a package)


def fonts(out: Path, per_class: int, seed: int) -> list[tuple[Path, int]]:
    covering = render_glyphs.font_coverage(Path("/usr/share/fonts"))
    rng, files = random.Random(seed), []
    for digit in range(10):
        choices = [path for path, cmap in covering if ord(str(digit)) in cmap]
        for i in range(per_class):
            image = None
            while image is None:
                image = render_glyphs.render(str(digit), rng.choice(choices), rng)
            files.append((out / f"font-{digit}-{i}.png", digit))
            image.save(files[-1][0])
    return files


def small(out: Path, per_class: int, seed: int) -> list[tuple[Path, int]]:
    from sklearn.datasets import load_digits

    bundled, rng, files = load_digits(), np.random.default_rng(seed), []
    for digit in range(10):
        for i, row in enumerate(rng.choice(np.flatnonzero(bundled.target == digit), per_class, replace=False)):
            files.append((out / f"small-{digit}-{i}.png", digit))
            Image.fromarray((bundled.images[row] * 255 / 16).astype(np.uint8)).save(files[-1][0])
    return files


def scans(out: Path, per_class: int, seed: int, run: Run) -> list[tuple[Path, int]]:
    dataset, rng, files = run.load_dataset(), np.random.default_rng(seed), []
    labels = dataset.test_labels.numpy()
    for digit in range(10):
        for i, row in enumerate(rng.choice(np.flatnonzero(labels == digit), per_class, replace=False)):
            ink = Image.fromarray(dataset.test_images[row].numpy()).resize((84, 84), Image.BICUBIC)
            paper = Image.new("L", (112, 112), 0)
            paper.paste(ink, (14 + int(rng.integers(-6, 7)), 14 + int(rng.integers(-6, 7))))
            soft = np.asarray(paper.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64) / 255
            gray = np.clip(200 - 160 * soft + rng.normal(0, 6, soft.shape), 0, 255).astype(np.uint8)
            files.append((out / f"scan-{digit}-{i}.jpg", digit))
            Image.fromarray(gray).convert("RGB").save(files[-1][0], quality=85)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/styles"))
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = Run.load(args.run_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    sets = {
        "fonts": fonts(args.out, args.per_class, args.seed),
        "small": small(args.out, args.per_class, args.seed),
        "scans": scans(args.out, args.per_class, args.seed, run),
    }
    threshold = (run.metadata.get("open_set") or {}).get("threshold")
    print(f"{args.run_dir}: trained on {run.trained_classes}, threshold {threshold}; {args.per_class} images a digit")
    print("| style | images | right, no rejection | accepted | right and accepted |\n|---|---|---|---|---|")
    for name, files in sets.items():
        images = np.stack([load_image(path).numpy() for path, _ in files])
        answers = predict(
            run, torch.from_numpy(images), [str(p) for p, _ in files], PredictConfig(), log=lambda _: None
        )
        truth = np.array([digit for _, digit in files])
        nearest = np.array([int(a.nearest) if a.nearest.isdigit() else -1 for a in answers])
        known = np.array([a.known for a in answers])
        right = nearest == truth
        print(f"| {name} | {len(files)} | {100 * right.mean():.1f} | {100 * known.mean():.1f} | "
              f"{100 * (right & known).mean():.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
