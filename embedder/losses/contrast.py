"""Contrast with a temperature, as one similarity matrix and ``cross_entropy``.

pytorch-metric-learning's ``NTXentLoss`` enumerates every positive pair and builds a negatives
matrix per pair: about 20 s for one step of 512 embeddings on a busy 2-core CPU, against ~30 ms
for this matrix form. ``tests/test_losses.py`` checks that these equal PML's ``SupConLoss`` and
``NTXentLoss`` on small batches.

Class contrast (SupCon) pulls every image of a class together against the batch's other classes;
the instance term (NT-Xent over two views) keeps each image apart from every other, which is what
the labels do not ask for and unseen classes need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_MASKED = -1e9  # not -inf: a zero target times -inf would be nan in the soft cross-entropy


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """PML's ``SupConLoss`` of unit ``embeddings``: per anchor, minus the mean log-probability of its positives
    among all the other embeddings, averaged over the anchors that have a positive (no host sync)."""
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(self_mask, _MASKED)
    positives = ((labels[:, None] == labels[None, :]) & ~self_mask).float()
    count = positives.sum(1)
    targets = positives / count.clamp(min=1)[:, None]
    per_anchor = F.cross_entropy(logits, targets, reduction="none")
    has_positive = (count > 0).float()
    return (per_anchor * has_positive).sum() / has_positive.sum().clamp(min=1)


def two_view_ntxent(embeddings: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """PML's ``NTXentLoss`` for ``[view one; view two]`` of B images with instance labels ``[0..B-1, 0..B-1]``:
    each view's positive is the other view of its image, every other embedding a negative."""
    n = len(embeddings)
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    logits = logits.masked_fill(self_mask, _MASKED)
    positive = (torch.arange(n, device=embeddings.device) + n // 2) % n
    return F.cross_entropy(logits, positive)


class ClassAndInstanceContrastLoss(nn.Module):
    """``supcon(classes) + instance_weight * ntxent(two views)``, called like :class:`InstanceAndClassTripletLoss`."""

    def __init__(self, temperature: float = 0.1, instance_weight: float = 0.0) -> None:
        super().__init__()
        self.temperature, self.instance_weight = temperature, instance_weight

    def forward(self, embeddings: torch.Tensor, class_labels: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
        loss = supcon_loss(embeddings, class_labels, self.temperature)
        if self.instance_weight:
            loss = loss + self.instance_weight * two_view_ntxent(embeddings, self.temperature)
        return loss


class PoolContrastLoss(nn.Module):
    """``weight * ntxent(two views)`` of an unlabelled pool's images: each image apart from every other, which
    is all that can be asked of images without labels (SimCLR's objective). With pseudo-labels (clusters),
    ``weight * (ntxent + supcon(clusters))``: class contrast pulls each cluster together as well."""

    def __init__(self, weight: float = 1.0, temperature: float = 0.1) -> None:
        super().__init__()
        self.weight, self.temperature = weight, temperature

    def forward(self, embeddings: torch.Tensor, clusters: torch.Tensor | None = None) -> torch.Tensor:
        loss = two_view_ntxent(embeddings, self.temperature)
        if clusters is not None:
            loss = loss + supcon_loss(embeddings, clusters.repeat(2), self.temperature)
        return self.weight * loss


def make_loss(
    loss: str, margin: float = 0.4, class_weight: float = 0.3, temperature: float = 0.1, instance_weight: float = 0.0
) -> nn.Module:
    """The training objective a :class:`~embedder.config.TrainConfig` names: ``triplet`` or ``contrast`` (``auto``
    is resolved by :func:`embedder.training.policies.loss_for`)."""
    from embedder.losses.triplet import InstanceAndClassTripletLoss

    if loss == "triplet":
        return InstanceAndClassTripletLoss(margin, class_weight)
    if loss == "contrast":
        return ClassAndInstanceContrastLoss(temperature, instance_weight)
    raise ValueError(f"unknown loss {loss!r}")
