"""The dataset type: train and test splits as whole uint8 tensors, with the classes' names.

Whole tensors, not per-sample PIL pipelines, so training can keep everything on the device.
Loaders (``embedder.data.datasets``) return one. This module imports torch: the CLI's start-up does not import
it (the registry imports it inside its loaders).

A :class:`Dataset` is a ``torch.utils.data.Dataset``, map-style, of its train split (``len``, ``dataset[i]`` as
``(uint8 (28, 28) image, label)``, :meth:`Dataset.get_labels`), and :meth:`Dataset.split` gives either split
as one, so a ``DataLoader``, PML's ``MPerClassSampler`` and easyfsl's ``TaskSampler`` take it as it is:

>>> sampler = MPerClassSampler(dataset.get_labels(), m=4, batch_size=32)
>>> loader = DataLoader(dataset, batch_size=32, sampler=sampler)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.utils.data

from embedder.data.classes import DIGIT_NAMES

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DIGIT_NAMES", "Dataset", "Split"]


@dataclass(frozen=True)
class Split(torch.utils.data.Dataset):
    """One split as a map-style PyTorch dataset: item ``i`` is ``(images[i], int(labels[i]))``."""

    images: torch.Tensor  # uint8 (N, 28, 28)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def get_labels(self) -> list[int]:
        """Every item's label, in order: what PML's and easyfsl's samplers read."""
        return self.labels.tolist()


@dataclass(frozen=True)
class Dataset(torch.utils.data.Dataset):
    name: str
    train_images: torch.Tensor  # uint8 (N, 28, 28), ink is bright
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str] = field(default_factory=lambda: list(DIGIT_NAMES))  # label i is class_names[i]
    root: Path | None = None  # where its files were read, if it has files
    warnings: list[str] = field(default_factory=list)  # what loading skipped, for the caller to show
    # The train-split rows a training held out (validation, calibration), drawn once (embedder.data.sampling.hold_out)
    # and stored in its run, which gives them back to the dataset it loads (Run.load_dataset); None: not drawn yet.
    held_out: np.ndarray | None = None

    @property
    def classes(self) -> list[int]:
        """The labels present in the train split, sorted."""
        return sorted(set(self.train_labels.tolist()))

    def class_counts(self, rows: Any = None) -> np.ndarray:
        """Train-split images of each label (``len(class_names)`` counts), over ``rows`` (indices or a mask) if
        given: the one count that batch shapes, shot checks and index sizing read."""
        import numpy as np  # lazily: the CLI reads this module for its help

        labels = self.train_labels.numpy() if rows is None else self.train_labels.numpy()[rows]
        return np.bincount(labels, minlength=len(self.class_names))

    def split(self, name: str = "train") -> Split:
        """The ``"train"`` or ``"test"`` split as a PyTorch dataset."""
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return Split(getattr(self, f"{name}_images"), getattr(self, f"{name}_labels"))

    # The train split, as a map-style PyTorch dataset.
    def __len__(self) -> int:
        return len(self.train_labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.train_images[i], int(self.train_labels[i])

    def get_labels(self) -> list[int]:
        """The train split's labels, in order."""
        return self.train_labels.tolist()

    def __bool__(self) -> bool:  # a dataset is a value, even one with an empty train split
        return True
