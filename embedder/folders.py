"""A user's own images: a tree of folders, each folder of image files one class.

Every folder under a root that directly holds image files is a class, named by its path relative to the
root (``cats``, or ``Greek/alpha`` in a nested tree). Each image goes through :func:`embedder.images.load_image`,
the same preprocessing as ``adder predict``, to the 28x28 convention the network reads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ImageError
from .images import load_image


def image_suffixes() -> set[str]:
    """The file extensions Pillow can open (``.png``, ``.jpg``, ...), lower-case."""
    from PIL import Image

    return {suffix.lower() for suffix in Image.registered_extensions()}


def class_folders(root: str | os.PathLike) -> dict[str, list[Path]]:
    """``{class name: its image files}`` for every folder under ``root`` that directly holds images, sorted."""
    root, suffixes = Path(root), image_suffixes()
    classes: dict[str, list[Path]] = {}
    for folder, _, files in sorted(os.walk(root)):
        images = sorted(Path(folder) / f for f in files if Path(f).suffix.lower() in suffixes)
        if images:
            classes[Path(folder).relative_to(root).as_posix()] = images
    return classes


@dataclass
class LoadedImages:
    images: torch.Tensor  # uint8 (N, 28, 28), the files that could be read, in the order given
    kept: list[int]  # which of the given paths they are
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why) for the others


def load_images(paths: list[Path], workers: int | None = None) -> LoadedImages:
    """Decode ``paths`` in parallel threads (Pillow and torch release the GIL); unreadable or blank ones are skipped."""

    def one(path: Path) -> torch.Tensor | str:
        try:
            return load_image(path)
        except ImageError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(one, paths))
    kept = [i for i, r in enumerate(results) if isinstance(r, torch.Tensor)]
    skipped = [(paths[i], r) for i, r in enumerate(results) if isinstance(r, str)]
    images = torch.stack([results[i] for i in kept]) if kept else torch.empty(0, 28, 28, dtype=torch.uint8)
    return LoadedImages(images, kept, skipped)
