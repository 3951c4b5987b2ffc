"""Write ``photo.jpg``: a digit as a user would photograph it, dark ink on grey paper, 140x140 JPEG.

    python examples/make_photo.py [OUT]     # default examples/photo.jpg

The digit is one of scikit-learn's bundled 8x8 digits (no download), drawn large with soft edges, a paper
tone and a little sensor noise, so the preprocessing (`embedder.data.images.load_image`) has real work to do:
find the background, invert, crop, scale and centre. Seeded, so the file is the same every time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from sklearn.datasets import load_digits

DIGIT_INDEX = 60  # a 3 of the bundled set


def make_photo(out: Path) -> None:
    ink = load_digits().images[DIGIT_INDEX] / 16.0  # 8x8, 0 (paper) .. 1 (ink)
    big = Image.fromarray((ink * 255).astype(np.uint8)).resize((100, 100), Image.BICUBIC)
    canvas = Image.new("L", (140, 140), 0)
    canvas.paste(big, (22, 16))
    soft = np.asarray(canvas.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64) / 255
    noise = np.random.default_rng(0).normal(0, 4, soft.shape)
    gray = np.clip(205 - 170 * soft + noise, 0, 255).astype(np.uint8)  # dark ink on light grey paper
    Image.fromarray(gray).convert("RGB").save(out, quality=90)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("photo.jpg")
    make_photo(target)
    print(f"wrote {target}")
