"""What a training is asked to do: :class:`TrainConfig` and its checks, without importing torch.

The CLI builds and checks one before the ~5 s import of torch, so bad options answer at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import UsageError

DEFAULT_RUN_DIR = "runs/latest"
METHODS = ("nn", "prototype")  # nearest support, or nearest class mean
MAX_WAYS = 8  # classes per batch when --batch-size is not given


@dataclass
class TrainConfig:
    classes: list[int] = field(default_factory=lambda: [0, 1, 2])
    dataset: str = "mnist"
    data_dir: str | None = None
    run_dir: str = DEFAULT_RUN_DIR
    epochs: int = 30
    batch_size: int | None = None  # default: m_per_class x min(len(classes), 8)
    m_per_class: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    margin: float = 0.2
    class_weight: float = 0.3
    embedding_dim: int = 1024
    width: int = 32
    seed: int = 0
    shots: int = 1
    method: str = "nn"
    device: str = "auto"
    val_fraction: float = 0.1
    dry_run: bool = False

    @property
    def ways(self) -> int:
        batch = self.batch_size or self.m_per_class * min(len(self.classes), MAX_WAYS)
        return batch // self.m_per_class

    def check(self) -> None:
        """Raise :class:`UsageError` for options that cannot train."""
        for name in ("epochs", "m_per_class", "embedding_dim", "width", "shots"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "margin", "class_weight", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise UsageError(
                    f"--{name.replace('_', '-')} must be a finite "
                    f"{'positive' if name == 'lr' else 'non-negative'} number, got {value}"
                )
        if self.embedding_dim % 16:
            raise UsageError(
                f"--embedding-dim must be a multiple of 16 (a 4x4 grid of descriptors), got {self.embedding_dim}"
            )
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError("the validation fraction must be in [0, 1)")
        if self.batch_size is not None:
            if self.batch_size % self.m_per_class:
                raise UsageError(
                    f"--batch-size {self.batch_size} is not a multiple of --m-per-class {self.m_per_class}"
                )
            if not 2 <= self.batch_size // self.m_per_class <= len(self.classes):
                raise UsageError(
                    f"--batch-size {self.batch_size} holds {self.batch_size // self.m_per_class} classes of "
                    f"{self.m_per_class}; a batch needs 2 to {len(self.classes)} classes (one triplet needs two)"
                )
