"""Uploaded images to the embedder's uint8 28x28 tensors, through :func:`embedder.load_image` and its guards.

The bytes never touch the disk: ``load_image`` decodes them from memory, with the decompression-bomb guard
and every decoding rule of the CLI. Before that, the image's header is read for its size, so an image over
the pixel limit is refused without being decoded.
"""

from __future__ import annotations

import io
import os

from starlette.datastructures import UploadFile  # what the form parser makes; FastAPI's is a subclass

from embedder import ImageError, load_image

from .errors import ApiError
from .settings import ServeSettings


def _check_pixels(data: bytes, where: str, field: str, settings: ServeSettings) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError:  # its header says over twice the limit: Pillow refuses to open it at all
        raise ApiError(413, field, f"{where}: over this server's limit of {settings.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(422, field, f"{where}: not an image Pillow can read") from None
    if width * height > settings.max_pixels:
        size = f"{width}x{height} is {width * height} pixels"
        raise ApiError(413, field, f"{where}: {size}, over this server's limit of {settings.max_pixels}")


def decode(data: bytes, where: str, field: str, settings: ServeSettings):
    """One upload's bytes as a uint8 ``(28, 28)`` tensor; an :class:`ApiError` on ``field`` naming ``where``."""
    if not data:
        raise ApiError(422, field, f"{where}: the file is empty")
    _check_pixels(data, where, field, settings)
    try:
        return load_image(data, name=where)
    except ImageError as exc:
        raise ApiError(422, field, str(exc)) from None


def describe(upload: UploadFile, field: str, i: int) -> str:
    """How an answer names an upload: its file name, else its place in the request."""
    return os.path.basename(upload.filename or "") or f"{field}[{i}]"


async def read_uploads(uploads: list[UploadFile], field: str, settings: ServeSettings) -> list[tuple[str, bytes]]:
    """The name and bytes of each of ``uploads``, after checking their number."""
    if not uploads:
        raise ApiError(422, field, f"{field}: give at least one image file")
    if len(uploads) > settings.max_images:
        raise ApiError(413, field, f"{field}: {len(uploads)} images, over this server's {settings.max_images}")
    files = []
    for i, upload in enumerate(uploads):
        if not isinstance(upload, UploadFile) or upload.filename is None:
            raise ApiError(422, field, f"{field}[{i}] is not a file upload")
        files.append((describe(upload, field, i), await upload.read()))
    return files


def decode_all(files: list[tuple[str, bytes]], field: str, settings: ServeSettings):
    """The names of ``files`` and their images as one uint8 ``(N, 28, 28)`` tensor (every one checked first)."""
    import torch

    return [name for name, _ in files], torch.stack([decode(data, name, field, settings) for name, data in files])
