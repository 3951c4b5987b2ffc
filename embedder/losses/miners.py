"""Triplet miners and a reducer in pytorch-metric-learning's own interfaces, free of host syncs.

PML's ``BatchHardMiner`` and ``AvgNonZeroReducer`` select with boolean masks and ``torch.where``,
whose output size the GPU must report back to the host every step. These produce tensors of a
size known in advance, so a CUDA training step never waits on the host. They compose like PML's
own parts: ``TripletMarginLoss(reducer=NonZeroMeanReducer())(emb, labels, miner(emb, labels))``.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.reducers import BaseReducer


class TwoViewTripletMiner(BaseMiner):
    """Every triplet of a batch of two views: the anchor's other view is the positive, every
    view of every other instance a negative.

    Expects ``labels`` laid out as ``[0..B-1, 0..B-1]`` (view one, then view two), as the trainer
    builds them. That is ``2B x 2(B-1)`` triplets, O(B^2), where PML's generic all-triplets
    search materialises a ``(2B)^3`` mask.
    """

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        n = len(labels)
        b = n // 2
        device = labels.device
        anchors = torch.arange(n, device=device)
        positives = (anchors + b) % n
        instance = anchors % b
        offsets = torch.arange(1, b, device=device)  # every other instance...
        other = (instance[:, None] + offsets[None, :]) % b
        negatives = torch.cat([other, other + b], dim=1)  # ...in either view
        per_anchor = negatives.shape[1]
        return anchors.repeat_interleave(per_anchor), positives.repeat_interleave(per_anchor), negatives.flatten()


class HardestTripletMiner(BaseMiner):
    """Batch-hard mining: for every anchor, its farthest positive and nearest negative.

    Same triplets as PML's ``BatchHardMiner`` where each anchor has a positive and a negative (as
    in a balanced two-view batch), without its ``torch.where`` host sync.
    """

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        distances = self.distance(embeddings, ref_emb)
        same = labels[:, None] == ref_labels[None, :]
        self_mask = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        # LpDistance: larger is farther; for a similarity (larger is nearer) flip the sense.
        sign = 1.0 if not self.distance.is_inverted else -1.0
        far = (sign * distances).masked_fill(~same | self_mask, float("-inf"))
        near = (sign * distances).masked_fill(same, float("inf"))
        anchors = torch.arange(len(labels), device=labels.device)
        return anchors, far.argmax(dim=1), near.argmin(dim=1)


class NonZeroMeanReducer(BaseReducer):
    """PML's ``AvgNonZeroReducer`` (mean over the triplets that still violate the margin) as one
    division, with no boolean indexing: ``sum(losses) / max(1, count(losses > 0))``."""

    def triplet_reduction(self, losses, loss_indices, embeddings, labels):
        return losses.sum() / (losses > 0).sum().clamp(min=1)

    element_reduction = triplet_reduction

    def assert_sizes_triplet(self, losses, loss_indices):
        pass
