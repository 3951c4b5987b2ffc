"""A user's own images: a tree of folders, each folder of image files one class (``--dataset folder:PATH``).

Every folder under a root that directly holds image files is a class, named by its path relative to the
root (``cats``, or ``Greek/alpha`` in a nested tree). Each image goes through :func:`embedder.data.images.load_image`,
the same preprocessing as ``adder predict``, to the 28x28 convention the network reads. Decoding runs in
threads once; the uint8 tensor is cached for every later command, under the data root's ``cache/folders``, or
under ``$TRIPLETSHOT_CACHE/folders`` when that is set (the test suite sets it: tests never write into a data root).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedder.data.dataset import Dataset
from embedder.data.images import load_image
from embedder.data.sampling import split_validation
from embedder.data.sources import POOL_FOLDER, UNKNOWN_FOLDER
from embedder.errors import ConfigError, ImageError, quote
from embedder.utils.files import write_bytes_atomic


def image_suffixes() -> set[str]:
    """The file extensions Pillow can open (``.png``, ``.jpg``, ...), lower-case."""
    from PIL import Image

    return {suffix.lower() for suffix in Image.registered_extensions()}


def class_folders(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """``{class name: its image files}`` for every folder under ``root`` that directly holds images, sorted;
    the subtrees ``root/<skip>`` left out (a dataset's unlabelled pool and its unknown images)."""
    root, suffixes = Path(root), image_suffixes()
    classes: dict[str, list[Path]] = {}
    for folder, _, files in sorted(os.walk(root)):
        if Path(folder).relative_to(root).parts[:1] in {(name,) for name in skip}:
            continue
        images = sorted(Path(folder) / f for f in files if Path(f).suffix.lower() in suffixes)
        if images:
            classes[Path(folder).relative_to(root).as_posix()] = images
    return classes


def image_files(root: str | os.PathLike) -> list[Path]:
    """Every image file under ``root``, at any depth, sorted."""
    return [path for files in class_folders(root).values() for path in files]


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


# --- a folder tree as a Dataset: split, decoded once, cached under the data root ------------------

CACHE_VERSION = 1  # part of the cache key: raise it when load_image's preprocessing changes
SPLIT_SEED = 0  # the random test split is a property of the folder, the same for every training
SHOWN = 3  # skipped files named in a warning
CACHE_ENV = "TRIPLETSHOT_CACHE"


def cache_root(data_root: Path) -> Path:
    """Where decoded folders are cached: ``$TRIPLETSHOT_CACHE``, else ``data_root/cache``."""
    return Path(os.environ[CACHE_ENV]).expanduser() if os.environ.get(CACHE_ENV) else Path(data_root) / "cache"


def load_folder_dataset(path: str, data_root: Path, test_fraction: float = 0.2, strict: bool = False) -> Dataset:
    """``folder:PATH`` as a :class:`~embedder.data.datasets.Dataset`: each folder of images a class, named by its path.

    The split is ``PATH/train`` + ``PATH/test`` when both exist, else ``test_fraction`` of each class, stratified
    and seeded. Unreadable or blank images are skipped with a warning (``strict``: an :class:`ImageError`).
    The decoded images are cached under :func:`cache_root`, keyed by the files' paths, sizes and mtimes.
    """
    root = _check_folder(path)
    given_split = (root / "train").is_dir() and (root / "test").is_dir()
    notes: list[str] = []
    if given_split:
        trees = {"train": class_folders(root / "train"), "test": class_folders(root / "test")}
        extra = sorted(set(trees["test"]) - set(trees["train"]))
        if extra:
            notes.append(f"{len(extra)} class(es) of {root / 'test'} have no training images, left out: {extra[0]}")
    else:
        trees = {"all": class_folders(root, skip=(POOL_FOLDER, UNKNOWN_FOLDER))}  # a pool, and no class's images
    names = sorted(trees["train" if given_split else "all"])
    paths, labels, parts = [], [], []
    for part, tree in trees.items():
        for label, name in enumerate(names):
            paths += tree.get(name, [])
            labels += [label] * len(tree.get(name, []))
            parts += [part] * len(tree.get(name, []))
    loaded, note = decode_cached(paths, cache_root(data_root) / "folders")
    notes += [note] if note else []
    if loaded.skipped:
        message = _skipped_message(loaded.skipped, len(paths))
        if strict:
            raise ImageError(message)
        notes.append(message)
    kept_labels = torch.tensor([labels[i] for i in loaded.kept], dtype=torch.int64)
    kept_parts = np.array([parts[i] for i in loaded.kept])
    _check_classes(root, names, kept_labels)  # before the split, which needs a class to split
    test = kept_parts == "test" if given_split else _random_test_split(kept_labels.numpy(), test_fraction)
    train, test = torch.from_numpy(~test), torch.from_numpy(test)
    return Dataset(
        f"folder:{root}", loaded.images[train], kept_labels[train], loaded.images[test], kept_labels[test],
        class_names=names, root=data_root, warnings=notes,
    )  # fmt: skip


def _check_folder(path: str) -> Path:
    root, given = Path(path).expanduser().resolve(), quote(f"folder:{path}")  # quote: no braces in a template
    if not root.exists():
        raise ConfigError("dataset", f"{{dataset}} {given}: no such folder")
    if not root.is_dir():
        raise ConfigError("dataset", f"{{dataset}} {given} is a file, not a folder of class folders")
    return root


def _check_classes(root: Path, names: list[str], labels: torch.Tensor) -> None:
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        what = f"one class ({quote(names[present[0]])})" if present else "no readable images"
        raise ConfigError(
            "dataset",
            f"{{dataset}} {quote(f'folder:{root}')} holds {what}: training needs two classes or more, "
            "each a folder of images",
        )


def _random_test_split(labels: np.ndarray, fraction: float) -> np.ndarray:
    """A mask of the test images: ``fraction`` of each class, seeded, leaving each class two to train on (the
    validation split's own rule, applied once per folder)."""
    test = np.zeros(len(labels), dtype=bool)
    test[split_validation(torch.from_numpy(labels), np.unique(labels).tolist(), fraction, SPLIT_SEED)[1]] = True
    return test


def _skipped_message(skipped: list[tuple[Path, str]], total: int) -> str:
    shown = "; ".join(why for _, why in skipped[:SHOWN]) + ("; ..." if len(skipped) > SHOWN else "")
    return f"skipped {len(skipped)} of {total} images that cannot be read or are blank: {shown}"


def cache_key(paths: list[Path]) -> str:
    """A digest of the files' paths, sizes and mtimes (and the preprocessing's version): what a cache is valid for."""
    entries = []
    for path in paths:
        stat = path.stat()
        entries.append([str(path), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps([CACHE_VERSION, entries]).encode()).hexdigest()[:32]


def decode_cached(paths: list[Path], cache_dir: Path) -> tuple[LoadedImages, str | None]:
    """:func:`load_images`, or what it returned for the very same files before; and a note if caching failed.

    The cache is an ``.npz`` of plain arrays, read without unpickling and written atomically.
    """
    file = cache_dir / f"{cache_key(paths)}.npz"
    cached = _read_cache(file, paths)
    if cached is not None:
        return cached, None
    loaded = load_images(paths)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(file, _cache_bytes(loaded, paths))
    except OSError as exc:
        return loaded, f"decoded images not cached in {cache_dir} ({exc.strerror or exc}): read again next time"
    return loaded, None


def _cache_bytes(loaded: LoadedImages, paths: list[Path]) -> bytes:
    index = {path: i for i, path in enumerate(paths)}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        images=loaded.images.numpy(),
        kept=np.array(loaded.kept, dtype=np.int64),
        skipped=np.array([index[path] for path, _ in loaded.skipped], dtype=np.int64),
        why=np.array([why for _, why in loaded.skipped], dtype=str),
    )
    return buffer.getvalue()


def _read_cache(file: Path, paths: list[Path]) -> LoadedImages | None:
    try:
        with np.load(file, allow_pickle=False) as arrays:
            images, kept, skipped, why = (arrays[k] for k in ("images", "kept", "skipped", "why"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # absent or damaged: decode again
        return None
    if len(images) != len(kept) or len(kept) + len(skipped) != len(paths) or images.shape[1:] != (28, 28):
        return None
    skipped_files = [(paths[i], str(w)) for i, w in zip(skipped, why, strict=True)]
    return LoadedImages(torch.from_numpy(images.astype(np.uint8)), kept.tolist(), skipped_files)
