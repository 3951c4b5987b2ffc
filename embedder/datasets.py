"""Datasets as whole uint8 tensors, found the way torchvision finds them.

Each dataset is a small function in :data:`DATASETS` that returns a :class:`Dataset`: the
train and test splits as ``uint8`` tensors of shape ``(N, 28, 28)`` with ``int64`` labels.
Whole tensors, not per-sample PIL pipelines, so training can keep everything on the device.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .classes import check_classes, parse_classes  # noqa: F401  (re-exported: they belong with datasets)
from .errors import DataNotFoundError, UsageError

DATA_ENV = "TRIPLETSHOT_DATA"
IMAGE_SIZE = 28


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 (N, 28, 28), ink is bright
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def classes(self) -> list[int]:
        return sorted(torch.unique(self.train_labels).tolist())


DatasetLoader = Callable[[Path], Dataset]
DATASETS: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Add a loader to :data:`DATASETS` under ``name``."""

    def decorator(loader: DatasetLoader) -> DatasetLoader:
        DATASETS[name] = loader
        return loader

    return decorator


def default_data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$TRIPLETSHOT_DATA``, else the per-user cache ``~/.cache/tripletshot``."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tripletshot"


def load_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`) from ``data_dir`` or the default root."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](default_data_root(data_dir))


# --- MNIST -------------------------------------------------------------------------------

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format MNIST ships in."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataNotFoundError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataNotFoundError(f"{path} is truncated: expected shape {shape}")
    return body.reshape(shape)


def _find_raw(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download_mnist(root: Path) -> None:
    from torchvision.datasets import MNIST

    try:
        MNIST(root, train=True, download=True)
        MNIST(root, train=False, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError when offline
        names = ", ".join(f"{stem}.gz" for pair in MNIST_FILES.values() for stem in pair)
        raise DataNotFoundError(
            f"MNIST is not in {root / 'MNIST' / 'raw'} and could not be downloaded ({type(exc).__name__}); "
            f"put {names} there, or pass --data-dir / set {DATA_ENV} to a folder holding MNIST/raw/"
        ) from None


@register_dataset("mnist")
def load_mnist(root: Path) -> Dataset:
    """MNIST via torchvision's layout ``ROOT/MNIST/raw/``; reads the files in place (read-only roots work)."""
    raw = root / "MNIST" / "raw"
    stems = [stem for pair in MNIST_FILES.values() for stem in pair]
    if any(_find_raw(raw, stem) is None for stem in stems):
        _download_mnist(root)
    arrays = {stem: _read_idx(_find_raw(raw, stem)) for stem in stems}  # type: ignore[arg-type]
    splits = {
        split: (torch.from_numpy(arrays[img].copy()), torch.from_numpy(arrays[lab].astype(np.int64)))
        for split, (img, lab) in MNIST_FILES.items()
    }
    return Dataset("mnist", *splits["train"], *splits["test"])


# --- scikit-learn's bundled 8x8 digits ---------------------------------------------------


@register_dataset("digits")
def load_digits(root: Path) -> Dataset:
    """scikit-learn's 1,797 bundled 8x8 digits, upscaled to MNIST's 20x20-in-28x28 convention.

    Needs no files and no network. Split 2:1 into train and test, stratified, with a fixed seed.
    """
    import torch.nn.functional as F
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    digit = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    images = (F.pad(digit, (4, 4, 4, 4)).squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=1 / 3, stratify=bunch.target, random_state=0
    )
    train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    return Dataset("digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
