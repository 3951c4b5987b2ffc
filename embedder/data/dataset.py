"""The dataset type: train and test splits as whole uint8 tensors, with the classes' names.

Whole tensors, not per-sample PIL pipelines, so training can keep everything on the device.
Loaders (``embedder.data.datasets``) return one; torch is imported for type hints only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DIGIT_NAMES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 (N, 28, 28), ink is bright
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str] = field(default_factory=lambda: list(DIGIT_NAMES))  # label i is class_names[i]
    root: Path | None = None  # where its files were read, if it has files
    warnings: list[str] = field(default_factory=list)  # what loading skipped, for the caller to show

    @property
    def classes(self) -> list[int]:
        """The labels present in the train split, sorted."""
        return sorted(set(self.train_labels.tolist()))
