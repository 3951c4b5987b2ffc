"""An unlabelled pool: images beside the labelled classes, trained on without a label (``--unlabelled``).

Three sources (:func:`pool_source` picks one from the option and the dataset):

- ``rest``: the train split's images of every class outside the trained and the validation classes. Their
  labels select nothing but which images are left out: the trained classes (labelled already), the validation
  classes (so that their held-out score stays a strict estimate: classes whose images training never saw), and
  the share ``val_fraction`` of each other class that the open-set threshold is calibrated on
  (:func:`pool_rows`), so that its impostors are images training never saw, as a real unknown is;
- a folder of images in any nesting, class folders or not (labels never read);
- for ``folder:PATH`` datasets, ``PATH/unlabelled/`` when it exists, unless ``--unlabelled none``.

A pool is held in memory as uint8 28x28 (784 bytes an image), by every training process; one larger than
:func:`pool_capacity` allows, shared among the processes on this machine, is a seeded random subset of that size,
with a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from embedder.data.dataset import Dataset
from embedder.data.sampling import validation_split
from embedder.data.sources import NO_POOL, POOL_FOLDER, REST_POOL
from embedder.errors import ConfigError, ImageError, quote

BYTES_PER_IMAGE = 28 * 28
MEMORY_SHARE = 0.25  # of the memory available when training starts: the pool's decoded images at most, per machine


class PoolOptions(Protocol):
    """What the pool reads of a training's options, and nothing else (:class:`embedder.config.TrainConfig` has
    them): where the pool is, which classes are labelled or held out (never in ``rest``), their held-out share,
    the seed of a capped pool's subset, and the data root of a folder pool's cache."""

    unlabelled: str | None
    classes: list[int]
    val_classes: list[int] | int | None
    val_fraction: float
    seed: int
    data_dir: str | None


@dataclass(frozen=True)
class Pool:
    images: torch.Tensor  # uint8 (N, 28, 28)
    source: str  # "rest" or the folder it was read from
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``37,240 unlabelled images (classes unknown) from the train split's other classes``: what run.json and
        the first lines say."""
        where = "the train split's other classes" if self.source == REST_POOL else self.source
        return f"{len(self.images):,} unlabelled images (classes unknown) from {where}"


def pool_source(config: PoolOptions, dataset: Dataset) -> str | None:
    """``rest``, a folder's path, or None for no pool: the option, else a folder dataset's ``unlabelled/``."""
    value = config.unlabelled
    if value is None:
        folder = _dataset_folder(dataset)
        return str(folder / POOL_FOLDER) if folder is not None and (folder / POOL_FOLDER).is_dir() else None
    if value == NO_POOL:
        return None
    if value == REST_POOL:
        return REST_POOL
    return str(Path(value).expanduser().resolve())


def _dataset_folder(dataset: Dataset) -> Path | None:
    return Path(dataset.name[len("folder:") :]) if dataset.name.startswith("folder:") else None


def pool_rows(dataset: Dataset, config: PoolOptions) -> np.ndarray:
    """Train-split rows of ``rest``: every class outside the trained and validation classes, less the share
    ``val_fraction`` of each, from which :func:`embedder.runs.calibration.calibration_rows` draws impostors."""
    others = _other_classes(dataset, config)
    if not others:
        return np.empty(0, np.int64)
    return validation_split(dataset, others, config.val_fraction, config.seed)[0]


def _other_classes(dataset: Dataset, config: PoolOptions) -> list[int]:
    excluded = set(config.classes) | set(config.val_classes or [])
    return [c for c in dataset.classes if c not in excluded]


def load_pool(config: PoolOptions, dataset: Dataset, data_root: Path | None = None, processes: int = 1) -> Pool | None:
    """The pool ``config`` asks for (None for none); :class:`ConfigError` naming ``unlabelled`` if it is empty.
    ``processes``: the training processes on this machine, each of which holds the pool (they share the memory)."""
    source = pool_source(config, dataset)
    if source is None:
        return None
    if source == REST_POOL:
        rows = pool_rows(dataset, config)
        if len(rows) == 0:
            raise ConfigError(
                "unlabelled",
                "{unlabelled} rest is empty: every class of " + quote(dataset.name) + " is trained on or held out",
            )
        keep, warnings = _within_capacity(len(rows), config.seed, processes)
        return Pool(dataset.train_images[torch.from_numpy(rows[keep])], REST_POOL, warnings)
    return _folder_pool(Path(source), config, data_root or dataset.root, processes)


def _folder_pool(folder: Path, config: PoolOptions, data_root: Path | None, processes: int) -> Pool:
    from embedder.data.datasets import default_data_root
    from embedder.data.folders import cache_root, decode_cached, image_files

    given = quote(str(folder))
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "a file, not a folder of images"
        raise ConfigError("unlabelled", f"{{unlabelled}} {given}: {what} (give none, rest or a folder of images)")
    paths = image_files(folder)
    if not paths:
        raise ConfigError("unlabelled", f"{{unlabelled}} {given} holds no image files")
    keep, warnings = _within_capacity(len(paths), config.seed, processes)
    paths = [paths[i] for i in keep]
    # Cached under the data root, as folder: datasets are; never inside the user's pool folder.
    loaded, note = decode_cached(paths, cache_root(data_root or default_data_root(config.data_dir)) / "folders")
    warnings += [note] if note else []
    if loaded.skipped:
        warnings.append(f"the pool skipped {len(loaded.skipped)} of {len(paths)} files that are not readable images")
    if len(loaded.images) == 0:
        raise ImageError(f"{given}: none of its {len(paths)} image files can be read: {loaded.skipped[0][1]}")
    return Pool(loaded.images, str(folder), warnings)


def pool_capacity() -> int:
    """Images a pool may hold: :data:`MEMORY_SHARE` of the memory available now, at 784 bytes an image."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 4 GB
        available = 4 << 30
    return max(1, int(available * MEMORY_SHARE) // BYTES_PER_IMAGE)


def _within_capacity(count: int, seed: int, processes: int = 1) -> tuple[np.ndarray, list[str]]:
    """Which of ``count`` pool images to keep: all, or a seeded random :func:`pool_capacity` of them (sorted),
    shared among the ``processes`` on this machine that each hold a copy, with the warning that says so."""
    most = max(1, pool_capacity() // max(1, processes))
    if count <= most:
        return np.arange(count), []
    chosen = np.sort(np.random.default_rng(seed).choice(count, most, replace=False))
    return chosen, [_capacity_warning(most, processes)]


def _capacity_warning(most: int, processes: int) -> str:
    each = f", shared by the {processes} training processes on this machine" if processes > 1 else ""
    return (
        f"the pool holds more images than {MEMORY_SHARE:.0%} of the free memory allows{each}: "
        f"training uses a seeded random {most:,} of them"
    )
