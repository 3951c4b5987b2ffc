"""Enrolment from one image: a new class enrolled from each of its images in turn, the others asked for.

    python examples/draw_symbols.py symbols
    embed train --dataset folder:symbols --classes all --shots 5 --val-fraction 0.3 --run-dir R [--loss contrast]
    python bench/enrol_one.py --run-dir R --images symbols/star-*.png --impostor symbols/noise.png

Each image is enrolled alone, as ``embed enroll --label new`` would, into a copy of the run; the other images are
then answered as ``embed predict`` would, at the run's threshold. Prints how often the new class is the nearest,
how often it is the answer (nearest and within the threshold), and how often the impostor is answered at all.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from embedder import Run, enrol, load_image, predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--images", nargs="+", required=True, help="images of the new class")
    parser.add_argument("--impostor", help="an image of no class")
    args = parser.parse_args()
    images = [load_image(path) for path in args.images]
    nearest = answered = impostors = asked = 0
    for i, support in enumerate(images):
        with tempfile.TemporaryDirectory() as scratch:
            run_dir = Path(scratch) / "run"
            shutil.copytree(args.run_dir, run_dir)
            enrol(run_dir, {"new": support.unsqueeze(0)})
            others = [image for j, image in enumerate(images) if j != i]
            queries = torch.stack(others + ([load_image(args.impostor)] if args.impostor else []))
            answers = predict(Run.load(run_dir), queries, [str(j) for j in range(len(queries))], log=lambda _: None)
        asked += len(others)
        nearest += sum(a.nearest == "new" for a in answers[: len(others)])
        answered += sum(a.name == "new" for a in answers[: len(others)])
        impostors += sum(a.name != "unknown" for a in answers[len(others) :])
    print(f"{args.run_dir}: new class nearest {nearest}/{asked}, answered {answered}/{asked}", end="")
    print(f", impostor answered {impostors}/{len(images)}" if args.impostor else "")


if __name__ == "__main__":
    main()
