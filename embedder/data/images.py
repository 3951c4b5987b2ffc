"""Any user image (photo, scan, drawing) to the MNIST convention the embedder was trained on.

MNIST digits are bright ink on black, their bounding box scaled to 20 px on the longest side,
placed in 28x28 with the centre of mass at pixel (14, 14). :func:`load_image` does the same
to a PNG, JPEG, BMP, GIF, TIFF or WebP of any size and mode, from a file or from bytes.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from embedder.errors import ImageError

INK_THRESHOLD = 0.15  # of the image's contrast range: fainter is background noise (JPEG, paper grain)
TARGET_BOX = 20
CANVAS = 28


def _open(source: Path | BinaryIO, name: str):
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Path) and not source.exists():
        raise ImageError(f"{name}: no such file")
    if isinstance(source, Path) and source.is_dir():
        raise ImageError(f"{name}: is a directory, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; treat that as the bomb it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            image.seek(0)  # first frame of an animation
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image is too large (over Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: damaged or truncated image ({exc})") from None
    return image


def _to_gray(image) -> np.ndarray:
    """Float grayscale in [0, 1] with alpha flattened onto a background that contrasts with the ink."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        alpha = rgba[..., 3]
        if alpha.sum() > 0 and alpha.min() < 1:
            # The visible strokes decide the background: dark ink goes on white, light ink on black.
            ink = float((gray * alpha).sum() / alpha.sum())
            background = 1.0 if ink < 0.5 else 0.0
            return gray * alpha + background * (1 - alpha)
        return gray
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        return np.clip(values / top, 0.0, 1.0)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def to_mnist(gray: np.ndarray, name: str = "image") -> torch.Tensor:
    """A float grayscale array in [0, 1] (any size, any polarity) to a uint8 28x28 MNIST-style digit."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = 1.0 - gray if background > 0.5 else gray.copy()  # MNIST: bright ink on black
    low, high = float(np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]))), float(ink.max())
    if high - low < 0.1:
        raise ImageError(f"{name}: no ink found, the image is blank")
    ink = np.clip((ink - low) / (high - low), 0.0, 1.0)
    ink[ink < INK_THRESHOLD] = 0.0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = torch.from_numpy(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]).float()
    h, w = crop.shape
    scale = TARGET_BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = F.interpolate(crop[None, None], size=size, mode="bilinear", align_corners=False, antialias=True)[0, 0]
    digit = digit.clamp(0, 1)
    mass = digit.sum()
    cy = float((digit.sum(1) * torch.arange(size[0])).sum() / mass)
    cx = float((digit.sum(0) * torch.arange(size[1])).sum() / mass)
    top = min(max(round(14 - cy), 0), CANVAS - size[0])
    left = min(max(round(14 - cx), 0), CANVAS - size[1])
    canvas = torch.zeros(CANVAS, CANVAS)
    canvas[top : top + size[0], left : left + size[1]] = digit
    return (canvas * 255).round().to(torch.uint8)


def load_image(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None) -> torch.Tensor:
    """Read an image (a file's path, its bytes, or a binary file object) as a uint8 ``(28, 28)`` MNIST-convention
    digit.

    Raises :class:`ImageError` (one line, naming ``name``: by default the path, else "image") for anything
    unreadable or blank.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    elif not hasattr(source, "read"):
        source = Path(source)
    name = name or (str(source) if isinstance(source, Path) else "image")
    image = _open(source, name)
    if image.width == 0 or image.height == 0:
        raise ImageError(f"{name}: the image is empty")
    return to_mnist(_to_gray(image), name)
