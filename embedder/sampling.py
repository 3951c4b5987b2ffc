"""Which images go where: balanced training batches, the validation split, and support draws."""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError


class BalancedBatchSampler:
    """Draws ``ways`` random classes and ``m`` random images of each, entirely on the device."""

    def __init__(self, labels: torch.Tensor, classes: list[int], m: int, ways: int, generator: torch.Generator) -> None:
        device = labels.device
        rows = [torch.nonzero(labels == c).flatten() for c in classes]
        self.counts = torch.tensor([len(r) for r in rows], device=device)
        self.table = torch.zeros(len(classes), max(len(r) for r in rows), dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            self.table[i, : len(r)] = r
        self.class_of_row = torch.tensor(classes, device=device)
        self.m, self.ways, self.generator = m, ways, generator

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into the labels given at construction, and their class labels."""
        g, device = self.generator, self.table.device
        rows = torch.randperm(len(self.counts), generator=g, device=device)[: self.ways]
        offsets = (torch.rand(self.ways, self.m, generator=g, device=device) * self.counts[rows, None]).long()
        indices = self.table[rows[:, None], offsets].flatten()
        return indices, self.class_of_row[rows].repeat_interleave(self.m)


def split_validation(
    labels: torch.Tensor, classes: list[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training classes' train-split images, split into train and validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(labels.numpy() == c))
        n_val = int(round(len(rows) * fraction))
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def sample_supports(
    labels: np.ndarray, classes: list[int], shots: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Indices into ``labels``: ``shots`` distinct examples of each class, none of them in ``exclude``."""
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    chosen = []
    for c in classes:
        pool = np.flatnonzero((labels == c) & allowed)
        if len(pool) < shots:
            raise ConfigError("shots", f"class {c} has {len(pool)} support candidates, fewer than {{shots}} {shots}")
        chosen.append(rng.choice(pool, size=shots, replace=False))
    return np.concatenate(chosen)
