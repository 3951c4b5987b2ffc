"""What a folder's images show, from their pixels: strokes (handwriting, symbols, glyphs) or filled shapes (photographed
objects), for ``--augmentation auto`` on a ``folder:`` dataset, whose name says nothing.

Strokes are thin: at the 28x28 convention (ink bright, scaled to 20 px) a pen line is 1-5 px wide, so few ink
pixels lie 3 px deep inside ink. A photographed object is a filled shape: more do. Measured (2026-12-05, 2-core VM)
on folders of PNGs/JPEGs read through ``load_dataset("folder:...")``, the share of ink pixels 3 px deep in ink (a
7x7 erosion): MNIST and the tour's symbols 0.00, scikit-learn's 8x8 digits (blurred strokes) 0.02-0.04,
crops of scikit-learn's two bundled photographs 0.10, Fashion-MNIST 0.16 (0.25 on its registry copy).
:data:`FILLED_FROM` sits between the blurred strokes and the photographs (``tests/test_transfer.py`` checks both
sides); a folder near it can be named with ``--augmentation``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

INK = 0.25  # of full brightness: a pixel at least this bright is ink
DEPTH = 3  # pixels: how deep inside ink a pixel of a filled shape lies (a 7x7 erosion)
FILLED_FROM = 0.06  # the share of ink pixels that deep at which images are filled shapes, not strokes
SAMPLE = 2000  # images looked at, at most (evenly spaced): the share is an average


def filled_share(images: torch.Tensor) -> float:
    """The share of ink pixels of uint8 ``images`` (N, 28, 28) that lie :data:`DEPTH` pixels deep inside ink."""
    step = max(1, len(images) // SAMPLE)
    ink = (images[::step].float() >= INK * 255).float().unsqueeze(1)
    size = 2 * DEPTH + 1
    deep = -F.max_pool2d(-ink, size, stride=1, padding=DEPTH)  # erosion: ink whose whole neighbourhood is ink
    total = float(ink.sum())
    return float(deep.sum()) / total if total else 0.0


def looks_photographed(images: torch.Tensor) -> bool:
    """Whether ``images`` are filled shapes (photographed objects) rather than strokes: :func:`filled_share`."""
    return filled_share(images) >= FILLED_FROM
