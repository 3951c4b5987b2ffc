"""Draw a small folder dataset of hand-drawn-looking symbols with Pillow, for the README's "your own symbols".

    python examples/draw_symbols.py symbols

writes ``symbols/train/<class>/*.png`` and ``symbols/test/<class>/*.png`` for circle, cross, square and triangle
(40 + 10 images each, every one with its own size, position, rotation, aspect and stroke width), plus, outside
the dataset: ``symbols/star-1.png`` .. ``star-5.png`` (a class the network never sees in training) and
``symbols/noise.png`` (speckle that is no symbol). Seeded: the same files every time.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 64


def _polygon(points: int, rng: random.Random, star: bool = False) -> list[tuple[float, float]]:
    """A closed outline of ``points`` corners (every other one pulled in for a star), jittered, rotated, placed."""
    base = {3: -math.pi / 2, 4: math.pi / 4}.get(points, -math.pi / 2)  # triangles and stars point up, squares sit
    turn, scale = base + rng.uniform(-0.25, 0.25), rng.uniform(0.28, 0.4) * SIZE
    cx, cy = SIZE / 2 + rng.uniform(-6, 6), SIZE / 2 + rng.uniform(-6, 6)
    aspect = rng.uniform(0.8, 1.2)
    outline = []
    for i in range(points):
        radius = scale * (0.45 if star and i % 2 else 1.0) * rng.uniform(0.92, 1.08)
        angle = turn + 2 * math.pi * i / points
        outline.append((cx + radius * math.cos(angle) * aspect, cy + radius * math.sin(angle) / aspect))
    return outline


def draw(shape: str, rng: random.Random) -> Image.Image:
    """One symbol, dark ink on white, as a person might draw it."""
    image = Image.new("L", (SIZE, SIZE), 255)
    pen = ImageDraw.Draw(image)
    width = rng.randint(3, 6)
    if shape == "circle":
        r, cx, cy = rng.uniform(0.25, 0.38) * SIZE, SIZE / 2 + rng.uniform(-5, 5), SIZE / 2 + rng.uniform(-5, 5)
        squash = rng.uniform(0.75, 1.25)
        pen.ellipse([cx - r * squash, cy - r / squash, cx + r * squash, cy + r / squash], outline=0, width=width)
    elif shape == "cross":
        ends = _polygon(4, rng)  # an X: the diagonals of a square
        pen.line([ends[0], ends[2]], fill=0, width=width)
        pen.line([ends[1], ends[3]], fill=0, width=width)
    else:
        corners = {"square": 4, "triangle": 3, "star": 10}[shape]
        outline = _polygon(corners, rng, star=shape == "star")
        pen.line([*outline, outline[0]], fill=0, width=width, joint="curve")
    return image


def noise(rng: random.Random) -> Image.Image:
    """Scattered dots: ink, but no symbol."""
    image = Image.new("L", (SIZE, SIZE), 255)
    pen = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.uniform(4, SIZE - 4), rng.uniform(4, SIZE - 4)
        pen.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=0)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder to write (created)")
    parser.add_argument("--train", type=int, default=40, help="training images per class")
    parser.add_argument("--test", type=int, default=10, help="test images per class")
    args = parser.parse_args()
    rng = random.Random(0)
    for shape in ("circle", "cross", "square", "triangle"):
        for split, count in (("train", args.train), ("test", args.test)):
            folder = args.out / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw(shape, rng).save(folder / f"{i:03d}.png")
    for i in range(1, 6):
        draw("star", rng).save(args.out / f"star-{i}.png")
    noise(rng).save(args.out / "noise.png")
    print(f"wrote 4 classes x {args.train} + {args.test} images, 5 stars and a noise image under {args.out}")


if __name__ == "__main__":
    main()
