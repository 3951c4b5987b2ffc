"""Datasets as whole uint8 tensors, found the way torchvision finds them.

Each dataset is a small function in :data:`DATASETS` that returns a :class:`Dataset`: the
train and test splits as ``uint8`` tensors of shape ``(N, 28, 28)`` with ``int64`` labels, and
the classes' names. Whole tensors, not per-sample PIL pipelines, so training can keep everything
on the device. MNIST, Fashion-MNIST, KMNIST and EMNIST are IDX files in torchvision's layouts
(:data:`IDX_DATASETS`); ``folder:PATH``, a user's own images, is :mod:`embedder.data.folders`. This module
imports torch and numpy inside the loaders only: the CLI reads :data:`DATASETS` for its help without
paying for them.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from embedder.data.classes import DIGIT_NAMES
from embedder.errors import ConfigError, DataError, DataNotFoundError, quote

if TYPE_CHECKING:
    import torch

    from embedder.data.dataset import Dataset  # imports torch: the loaders import it when they run

DATA_ENV = "TRIPLETSHOT_DATA"


DatasetLoader = Callable[[Path], "Dataset"]
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


FOLDER = "folder:"  # --dataset folder:PATH, a user's own images


def check_dataset_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is in :data:`DATASETS` or is ``folder:PATH``."""
    if name.startswith(FOLDER) and name[len(FOLDER) :].strip():
        return
    if name not in DATASETS:
        choices = ", ".join([*sorted(DATASETS), f"{FOLDER}PATH"])
        raise ConfigError("dataset", f"unknown {{dataset}} {quote(name)}: choose one of {choices}")


def load_dataset(
    name: str = "mnist", data_dir: str | os.PathLike | None = None, test_fraction: float = 0.2, strict: bool = False
) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`) from ``data_dir`` or the default root.

    ``folder:PATH`` reads a folder of class folders (:mod:`embedder.data.folders`), caching the decoded images
    under the data root; ``test_fraction`` and ``strict`` apply to it alone.
    """
    check_dataset_name(name)
    if name.startswith(FOLDER):
        from embedder.data.folders import load_folder_dataset  # imports torch: only for folder:

        return load_folder_dataset(name[len(FOLDER) :], default_data_root(data_dir), test_fraction, strict)
    return DATASETS[name](default_data_root(data_dir))


# --- IDX files, the format of MNIST and its relatives ---------------------------------------


def read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file of ``kind`` ``"images"`` (uint8 ``(N, H, W)``) or ``"labels"`` (int64 ``(N,)``), gzipped or not,
    through torchvision's MNIST readers. They open a path, so a gzipped file is decompressed into a temporary file
    first (never beside it: a data root may be read-only)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if kind == "images" else read_label_file
    try:
        if path.suffix != ".gz":
            return reader(str(path))
        with gzip.open(path, "rb") as packed, tempfile.NamedTemporaryFile(prefix=path.stem) as plain:
            shutil.copyfileobj(packed, plain)
            plain.flush()
            return reader(plain.name)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read: {exc}") from None
    except (AssertionError, KeyError, TypeError, ValueError, RuntimeError, IndexError):  # torchvision's checks
        raise DataError(f"{path} is not a whole unsigned-byte IDX file of {kind}") from None


def find_raw(raw: Path, stem: str) -> Path | None:
    """``raw/stem`` or ``raw/stem.gz``, whichever exists."""
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_idx_splits(raw: Path, files: dict[str, tuple[str, str]] = MNIST_FILES) -> dict[str, tuple]:
    """``{"train": (images, labels), "test": ...}`` as torch tensors from the IDX files in ``raw``."""
    return {
        split: (read_idx(find_raw(raw, images), "images"), read_idx(find_raw(raw, labels), "labels"))  # type: ignore[arg-type]
        for split, (images, labels) in files.items()
    }


def missing_files_error(name: str, raw: Path, stems: list[str], why: str = "") -> DataNotFoundError:
    """The one-line error for files that are not there: which folder, which files, how to point elsewhere."""
    files = ", ".join(f"{stem}.gz" for stem in stems)
    return DataNotFoundError(
        f"{name} is not in {raw}{why}; put {files} there (gzipped or not), or point the data root "
        f"(data_dir, --data-dir or ${DATA_ENV}) at a folder holding {raw.parent.name}/raw/"
    )


# --- MNIST and its relatives, in torchvision's layouts ---------------------------------------


@dataclass(frozen=True)
class IdxLayout:
    """Where torchvision keeps one IDX dataset under the data root, and what its labels mean."""

    title: str  # for messages: "Fashion-MNIST"
    folder: str  # torchvision's class name, the folder under the root: ROOT/FashionMNIST/raw/
    class_names: list[str]  # by label, after first_label is subtracted
    files: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(MNIST_FILES))
    transposed: bool = False  # EMNIST stores each image transposed
    first_label: int = 0  # EMNIST-letters numbers its classes from 1
    download: dict[str, str] = field(default_factory=dict)  # extra torchvision arguments (EMNIST's split)

    @property
    def stems(self) -> list[str]:
        return [stem for pair in self.files.values() for stem in pair]


def _emnist(split: str, class_names: list[str], first_label: int = 0) -> IdxLayout:
    files = {
        "train": (f"emnist-{split}-train-images-idx3-ubyte", f"emnist-{split}-train-labels-idx1-ubyte"),
        "test": (f"emnist-{split}-test-images-idx3-ubyte", f"emnist-{split}-test-labels-idx1-ubyte"),
    }
    return IdxLayout(f"EMNIST {split}", "EMNIST", class_names, files, True, first_label, {"split": split})


LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
# torchvision's names for each split; EMNIST-balanced merges the lower-case letters shaped like capitals.
IDX_DATASETS = {
    "mnist": IdxLayout("MNIST", "MNIST", DIGIT_NAMES),
    "fashion-mnist": IdxLayout(
        "Fashion-MNIST",
        "FashionMNIST",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    ),
    "kmnist": IdxLayout("KMNIST", "KMNIST", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
    "emnist-letters": _emnist("letters", LETTERS, first_label=1),
    "emnist-digits": _emnist("digits", DIGIT_NAMES),
    "emnist-balanced": _emnist("balanced", DIGIT_NAMES + [c.upper() for c in LETTERS] + list("abdefghnqrt")),
}


def _download(root: Path, layout: IdxLayout) -> None:
    """Fetch the files with torchvision (online only); offline, the error names the folder and the files."""
    import torchvision.datasets

    raw = root / layout.folder / "raw"
    created = [p for p in (root, root / layout.folder, raw) if not p.exists()]
    try:
        for train in (True, False):
            getattr(torchvision.datasets, layout.folder)(root, train=train, download=True, **layout.download)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError when offline
        for folder in reversed(created):  # leave no empty folders behind
            shutil.rmtree(folder, ignore_errors=True)
        why = f" and could not be downloaded ({type(exc).__name__})"
        raise missing_files_error(layout.title, raw, layout.stems, why) from None


def load_idx_dataset(name: str, root: Path) -> Dataset:
    """Dataset ``name`` of :data:`IDX_DATASETS` from ``ROOT/<folder>/raw/``, read in place (read-only roots work).

    Missing files are downloaded through torchvision; files that are there are never checksummed against
    torchvision's list (recompressed copies read the same).
    """
    from embedder.data.dataset import Dataset

    layout = IDX_DATASETS[name]
    raw = root / layout.folder / "raw"
    if any(find_raw(raw, stem) is None for stem in layout.stems):
        _download(root, layout)
    splits = load_idx_splits(raw, layout.files)
    for split, (images, labels) in splits.items():
        if layout.transposed:
            images = images.transpose(1, 2).contiguous()
        labels = labels - layout.first_label
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(layout.class_names):
            count = len(layout.class_names)
            raise DataError(f"{raw}: {split} labels fall outside the {count} classes of {layout.title}")
        splits[split] = (images, labels)
    return Dataset(name, *splits["train"], *splits["test"], class_names=list(layout.class_names), root=root)


for _name in IDX_DATASETS:
    DATASETS[_name] = functools.partial(load_idx_dataset, _name)


# --- scikit-learn's bundled 8x8 digits ------------------------------------------------------


@register_dataset("digits")
def load_digits(root: Path) -> Dataset:
    """scikit-learn's 1,797 bundled 8x8 digits, upscaled to MNIST's 20x20-in-28x28 convention.

    Needs no files and no network. Split 2:1 into train and test, stratified, with a fixed seed.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    from embedder.data.dataset import Dataset

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
