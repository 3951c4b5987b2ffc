"""Render a third selection domain: letters of several scripts from the fonts Debian ships, as a folder: tree.

    python examples/render_glyphs.py /tmp/glyphs [--per-class 20] [--seed 0] [--fonts /usr/share/fonts]

Each class is one character; its folder is ``<script>-<code point>`` (``a-latin-0041``), so sorted labels
group the scripts: train on the first scripts' labels, score the others (bench/transfer.py, bench/glyphs.py).
Each image is the character in a random font that covers it (fontTools reads the cmap), at a random size,
rotation, position and stroke weight, slightly blurred, with speckle noise: what a scan of print would see.
A character drawn as a kept one is (Greek Alpha and Cyrillic A as Latin A, Cherokee and Tifinagh letters
that are Latin ones) is left out, so that every class is a shape of its own.
Images are 56x56 PNGs, bright ink on black. Never commit the output; needs Pillow and fontTools
(fonts-noto-core, fonts-dejavu-core, fonts-freefont-ttf, fonts-liberation).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SCRIPTS = {  # name: (first, last) code point; every covered character of the range is a class
    "a-latin": (0x41, 0x5A),
    "b-greek": (0x391, 0x3A9),
    "c-cyrillic": (0x410, 0x42F),
    "d-armenian": (0x531, 0x556),
    "e-hebrew": (0x5D0, 0x5EA),
    "f-georgian": (0x10D0, 0x10F0),
    "g-cherokee": (0x13A0, 0x13C7),
    "h-runic": (0x16A0, 0x16C7),
    "i-tifinagh": (0x2D30, 0x2D55),
}
SIZE = 56
MIN_FONTS = 2  # a character fewer fonts cover is left out
# Median correlation, over the fonts two characters share, from which they are one shape: homoglyphs (Latin A and
# Greek Alpha) score 0.98-1.00; distinct letters of a similar build (Lambda and A, runes a stroke apart) 0.90-0.97.
TWIN = 0.97
REFERENCE_FONTS = 5  # how many shared fonts a pair is compared in


def font_coverage(root: Path) -> list[tuple[Path, set[int]]]:
    from fontTools.ttLib import TTFont

    fonts = []
    for path in sorted([*root.rglob("*.ttf"), *root.rglob("*.otf")]):
        try:
            cmap = TTFont(path, lazy=True, fontNumber=0).getBestCmap() or {}
        except Exception:  # a font fontTools cannot read is skipped
            continue
        fonts.append((path, set(cmap)))
    return fonts


def render(char: str, font_path: Path, rng: random.Random):
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    size = rng.randint(30, 44)
    font = ImageFont.truetype(str(font_path), size)
    canvas = Image.new("L", (SIZE * 2, SIZE * 2), 0)
    draw = ImageDraw.Draw(canvas)
    stroke = rng.choice([0, 0, 0, 1, 1, 2])
    draw.text((SIZE, SIZE), char, fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
    box = canvas.getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box).rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, expand=True)
    scale = rng.uniform(0.6, 0.85) * SIZE / max(glyph.size)
    glyph = glyph.resize((max(1, int(glyph.width * scale)), max(1, int(glyph.height * scale))), Image.BILINEAR)
    out = Image.new("L", (SIZE, SIZE), 0)
    jitter = SIZE // 12
    x = (SIZE - glyph.width) // 2 + rng.randint(-jitter, jitter)
    y = (SIZE - glyph.height) // 2 + rng.randint(-jitter, jitter)
    out.paste(glyph, (max(0, x), max(0, y)))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.9)))
    pixels = out.load()
    for _ in range(rng.randint(0, 12)):  # speckles
        pixels[rng.randrange(SIZE), rng.randrange(SIZE)] = rng.randint(100, 255)
    return out


def reference(char: str, font_path: Path):
    """The character's outline in one font, cropped to its ink, on a 24x24 grid with zero mean and unit norm."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((48, 48), char, fill=255, font=ImageFont.truetype(str(font_path), 48), anchor="mm")
    box = canvas.getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size)
    square = Image.new("L", (side, side), 0)
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    x = np.asarray(square.resize((24, 24), Image.BILINEAR), dtype=np.float64).ravel()
    x -= x.mean()
    return x / (np.linalg.norm(x) or 1.0)


def is_twin(code: int, kept: list[int], covering: dict[int, list[Path]], cache: dict) -> int | None:
    """A kept character of the same shape (Latin A, Greek Alpha and Cyrillic A are one drawing in most fonts):
    two classes that no font tells apart would make an impossible class pair, and an open-set threshold
    calibrated on them would have to reject nearly everything."""
    import numpy as np

    def outline(c: int, font: Path):
        if (c, font) not in cache:
            cache[c, font] = reference(chr(c), font)
        return cache[c, font]

    for other in kept:
        shared = [f for f in covering[code] if f in set(covering[other])][:REFERENCE_FONTS]
        scores = [
            float(a @ b) for f in shared if (a := outline(code, f)) is not None and (b := outline(other, f)) is not None
        ]
        if scores and float(np.median(scores)) >= TWIN:
            return other
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where the class folders are written (not in the repository)")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fonts", type=Path, default=Path("/usr/share/fonts"))
    args = parser.parse_args()
    try:
        fonts = font_coverage(args.fonts)
    except ImportError as exc:
        print(f"error: {exc.name} is needed: pip install Pillow fontTools", file=sys.stderr)
        return 2
    if not fonts:
        print(f"error: no .ttf or .otf fonts under {args.fonts}", file=sys.stderr)
        return 2
    rng, classes, kept, twins, cache = random.Random(args.seed), 0, [], 0, {}
    covering_fonts = {}
    for script, (first, last) in SCRIPTS.items():
        for code in range(first, last + 1):
            covering = covering_fonts[code] = [path for path, cmap in fonts if code in cmap]
            if len(covering) < MIN_FONTS:
                continue
            if is_twin(code, kept, covering_fonts, cache) is not None:
                twins += 1
                continue
            kept.append(code)
            folder = args.out / f"{script}-{code:04X}"
            folder.mkdir(parents=True, exist_ok=True)
            written = 0
            for _ in range(4 * args.per_class):
                image = render(chr(code), rng.choice(covering), rng)
                if image is not None:
                    image.save(folder / f"{written:03d}.png")
                    written += 1
                if written == args.per_class:
                    break
            classes += 1
    print(f"{classes} classes of {args.per_class} images under {args.out} ({twins} left out as twins of a kept shape)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
