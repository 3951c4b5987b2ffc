"""Any user image (photo, scan, drawing) to the MNIST convention the embedder was trained on.

MNIST digits are bright ink on black, their bounding box scaled to 20 px on the longest side,
placed in 28x28 with the centre of mass at pixel (14, 14). :func:`load_image` does the same
to a PNG, JPEG, BMP, GIF, TIFF or WebP of any size and mode, from a file or from bytes.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from embedder.errors import ImageError

INK_THRESHOLD = 0.15  # of the image's contrast range: fainter is background noise (JPEG, paper grain)
BLANK_CONTRAST = 0.1  # an image whose ink rises less than this above its border is blank
TARGET_BOX = 20
CANVAS = 28
CENTRE = 14  # the pixel (row and column) the centre of mass goes to

# The steps, in words, each beside the code that does it (@_step): the export's ``preprocessing`` is this list.
READING: list[str] = []  # load_image's own steps, before to_mnist's
Step = Callable[[Any, str], Any]
TO_MNIST: list[tuple[str, Step]] = []


def _step(description: str, into: list | None = None) -> Callable[[Step], Step]:
    """Register ``description`` for the function it decorates: to_mnist's steps run in the order they are defined."""

    def decorator(function: Step) -> Step:
        if into is None:
            TO_MNIST.append((description, function))
        else:
            into.append(description)
        return function

    return decorator


def preprocessing_steps() -> list[str]:
    """Every step from an image file to the uint8 28x28 digit, in words, in order: what :func:`load_image` runs."""
    return [*READING, *(description for description, _ in TO_MNIST)]


@_step("read the file with Pillow (first frame); refuse an empty image or one over Pillow's decompression-bomb limit",
       READING)
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


@_step(
    "convert to grayscale in [0, 1] (ITU-R 601 luma); flatten alpha onto a background that contrasts with the ink",
    READING,
)
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


def _border(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])


@_step("make the ink bright on black: invert when the median of the border pixels is above 0.5")
def _bright_ink(gray: np.ndarray, name: str) -> np.ndarray:
    return 1.0 - gray if float(np.median(_border(gray))) > 0.5 else gray.copy()  # MNIST: bright ink on black


@_step(f"refuse a blank image: one whose maximum is less than {BLANK_CONTRAST} above the median of its border pixels")
def _refuse_blank(ink: np.ndarray, name: str) -> np.ndarray:
    if float(ink.max()) - float(np.median(_border(ink))) < BLANK_CONTRAST:
        raise ImageError(f"{name}: no ink found, the image is blank")
    return ink


@_step(f"stretch to [0, 1] between the border median and the maximum; zero what is under {INK_THRESHOLD}")
def _stretch(ink: np.ndarray, name: str) -> np.ndarray:
    low, high = float(np.median(_border(ink))), float(ink.max())
    ink = np.clip((ink - low) / (high - low), 0.0, 1.0)
    ink[ink < INK_THRESHOLD] = 0.0
    return ink


@_step(f"crop to the ink's bounding box; resize (bilinear, antialiased) so its longest side is {TARGET_BOX} px")
def _crop_and_resize(ink: np.ndarray, name: str) -> torch.Tensor:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = torch.from_numpy(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]).float()
    h, w = crop.shape
    scale = TARGET_BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = F.interpolate(crop[None, None], size=size, mode="bilinear", align_corners=False, antialias=True)[0, 0]
    return digit.clamp(0, 1)


@_step(f"paste into a black {CANVAS}x{CANVAS} canvas with the centre of mass at pixel ({CENTRE}, {CENTRE})")
def _centre(digit: torch.Tensor, name: str) -> torch.Tensor:
    size, mass = digit.shape, digit.sum()
    cy = float((digit.sum(1) * torch.arange(size[0])).sum() / mass)
    cx = float((digit.sum(0) * torch.arange(size[1])).sum() / mass)
    top = min(max(round(CENTRE - cy), 0), CANVAS - size[0])
    left = min(max(round(CENTRE - cx), 0), CANVAS - size[1])
    canvas = torch.zeros(CANVAS, CANVAS)
    canvas[top : top + size[0], left : left + size[1]] = digit
    return canvas


@_step("round to uint8 (0-255)")
def _to_uint8(canvas: torch.Tensor, name: str) -> torch.Tensor:
    return (canvas * 255).round().to(torch.uint8)


def to_mnist(gray: np.ndarray, name: str = "image") -> torch.Tensor:
    """A float grayscale array in [0, 1] (any size, any polarity) to a uint8 28x28 MNIST-style digit: the steps of
    :data:`TO_MNIST`, in order."""
    x: Any = gray
    for _, step in TO_MNIST:
        x = step(x, name)
    return x


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
