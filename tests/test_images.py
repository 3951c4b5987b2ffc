"""User images of every kind become the MNIST convention; bad files are one-line errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from embedder.data.images import ImageError, load_image, to_mnist
from embedder.errors import ConfigError


def mnist_like_digit() -> torch.Tensor:
    """A 28x28 uint8 '7'-ish stroke drawing, bright on black, centred like MNIST."""
    canvas = np.zeros((28, 28), dtype=np.uint8)
    canvas[6:9, 7:21] = 255
    for row in range(9, 23):
        col = 19 - (row - 9) // 2
        canvas[row, col - 1 : col + 2] = 255
    return torch.from_numpy(canvas)


def save(array: np.ndarray, path, mode: str | None = None, **kwargs) -> None:
    Image.fromarray(array, mode=mode).save(path, **kwargs)


def forms(digit: np.ndarray, tmp_path) -> dict[str, object]:
    """The same digit as a user might hand it over, in many files."""
    paths = {}
    white_on_black = digit
    black_on_white = 255 - digit
    paths["png_white_on_black"] = tmp_path / "wob.png"
    save(white_on_black, paths["png_white_on_black"])
    paths["png_black_on_white"] = tmp_path / "bow.png"
    save(black_on_white, paths["png_black_on_white"])
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = digit  # dark ink, transparent background
    paths["rgba_transparent"] = tmp_path / "rgba.png"
    save(rgba, paths["rgba_transparent"])
    big = np.full((420, 600), 250, dtype=np.uint8)  # off-white paper, digit off-centre and 8x larger
    ink = np.kron(255 - digit, np.ones((8, 8), dtype=np.uint8))
    big[40 : 40 + 224, 330 : 330 + 224] = np.minimum(big[40 : 40 + 224, 330 : 330 + 224], ink)
    paths["large_offcentre"] = tmp_path / "big.png"
    save(big, paths["large_offcentre"])
    paths["jpeg"] = tmp_path / "digit.jpg"
    save(np.stack([black_on_white] * 3, axis=-1), paths["jpeg"], quality=85)
    paths["jpeg_large"] = tmp_path / "big.jpg"
    save(big, paths["jpeg_large"], quality=80)
    paths["palette_gif"] = tmp_path / "digit.gif"
    Image.fromarray(black_on_white).convert("P").save(paths["palette_gif"])
    paths["bmp"] = tmp_path / "digit.bmp"
    save(black_on_white, paths["bmp"])
    paths["tiff_16bit"] = tmp_path / "digit.tif"
    Image.fromarray(digit.astype(np.uint16) * 257).save(paths["tiff_16bit"])
    paths["webp"] = tmp_path / "digit.webp"
    save(np.stack([black_on_white] * 3, axis=-1), paths["webp"], lossless=True)
    return paths


def test_preprocessing_an_mnist_convention_digit_changes_little():
    once = to_mnist(mnist_like_digit().numpy() / 255.0)
    twice = to_mnist(once.numpy() / 255.0)
    assert once.shape == (28, 28) and once.dtype == torch.uint8
    assert torch.corrcoef(torch.stack([once.flatten().float(), twice.flatten().float()]))[0, 1] > 0.95


def test_real_mnist_digits_come_back_almost_unchanged(mnist):
    correlations = []
    for digit in mnist.test_images[:200]:
        again = to_mnist(digit.numpy() / 255.0)
        correlations.append(
            float(torch.corrcoef(torch.stack([digit.flatten().float(), again.flatten().float()]))[0, 1])
        )
    assert np.median(correlations) > 0.99 and np.mean(np.array(correlations) > 0.9) > 0.95


@pytest.mark.parametrize(
    "form",
    [
        "png_white_on_black",
        "png_black_on_white",
        "rgba_transparent",
        "large_offcentre",
        "jpeg",
        "jpeg_large",
        "palette_gif",
        "bmp",
        "tiff_16bit",
        "webp",
    ],
)
def test_every_form_becomes_the_same_mnist_digit(tmp_path, form):
    digit = mnist_like_digit()
    reference = to_mnist(digit.numpy() / 255.0).float()
    loaded = load_image(forms(digit.numpy(), tmp_path)[form]).float()
    assert loaded.shape == (28, 28)
    assert torch.corrcoef(torch.stack([reference.flatten(), loaded.flatten()]))[0, 1] > 0.9
    # centre of mass at (14, 14), longest side of the ink box 20 px: the MNIST convention
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = loaded.sum()
    assert abs(float((loaded * ys).sum() / mass) - 14) < 1 and abs(float((loaded * xs).sum() / mass) - 14) < 1
    rows, cols = torch.nonzero(loaded > 40, as_tuple=True)
    assert 18 <= max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1 <= 21


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; Pillow checks the size before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def bad_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    good = io.BytesIO()
    Image.fromarray(255 - mnist_like_digit().numpy()).save(good, format="PNG")
    (tmp_path / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "bomb.png").write_bytes(png_with_size(20000, 20000))
    Image.new("L", (50, 40), 255).save(tmp_path / "blank.png")
    (tmp_path / "folder").mkdir()
    return {
        "missing": (tmp_path / "nope.png", "no such file"),
        "directory": (tmp_path / "folder", "directory"),
        "text": (tmp_path / "notes.txt", "not an image"),
        "empty": (tmp_path / "empty.png", "not an image"),
        "truncated": (tmp_path / "truncated.png", "truncated"),
        "bomb": (tmp_path / "bomb.png", "decompression-bomb"),
        "blank": (tmp_path / "blank.png", "blank"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "text", "empty", "truncated", "bomb", "blank"])
def test_bad_files_raise_one_clear_error(tmp_path, case):
    path, message = bad_files(tmp_path)[case]
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ConfigError)  # CLI: exit 1, not 2
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("form", ["png_black_on_white", "rgba_transparent", "jpeg_large", "tiff_16bit"])
def test_bytes_and_file_objects_load_as_the_file_does(tmp_path, form):
    path = forms(mnist_like_digit().numpy(), tmp_path)[form]
    from_file = load_image(path)
    assert torch.equal(load_image(path.read_bytes()), from_file)
    with open(path, "rb") as f:
        assert torch.equal(load_image(f), from_file)


@pytest.mark.parametrize("case", ["text", "empty", "truncated", "bomb", "blank"])
def test_bad_bytes_raise_the_same_error_under_the_name_given(tmp_path, case):
    path, message = bad_files(tmp_path)[case]
    with pytest.raises(ImageError, match=message) as info:
        load_image(path.read_bytes(), name="upload.png")
    assert str(info.value).startswith("upload.png: ") and str(path) not in str(info.value)
