"""The training objective, composed from pytorch-metric-learning parts.

Class triplets alone collapse the embedding onto the few training classes: on MNIST, a net
trained on 0,1,2 that way labels the other seven digits worse than raw pixels do. Instance
triplets (two augmented views of one image are the positive pair; every other image in the
batch is a negative) force the net to describe *each* image, which transfers to unseen
classes. A smaller weight of class triplets keeps the training classes well separated.

Instance triplets use *all* triplets, not batch-hard mining: batch-hard mining from random
weights collapsed every embedding onto one point here (the loss sat at exactly
``margin x (1 + class_weight)`` for all 23 epochs it ran). Class triplets are batch-hard mined: all of them
would be O(B^3) with few classes (13M for 512 embeddings of 3 classes, seconds a step).
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import nn

from embedder.losses.miners import HardestTripletMiner, NonZeroMeanReducer, TwoViewTripletMiner


class InstanceAndClassTripletLoss(nn.Module):
    """``triplet(every two-view instance triplet) + class_weight * triplet(batch-hard class triplets)``.

    Called with the embeddings of two views ``[view one; view two]`` of ``B`` images, their class
    labels and instance ids ``[0..B-1, 0..B-1]``.
    """

    def __init__(self, margin: float = 0.4, class_weight: float = 0.3) -> None:
        super().__init__()
        self.class_weight = class_weight
        self.instance_loss = TripletMarginLoss(margin=margin, reducer=NonZeroMeanReducer())
        self.class_loss = TripletMarginLoss(margin=margin, reducer=NonZeroMeanReducer())
        self.instance_miner = TwoViewTripletMiner()
        self.class_miner = HardestTripletMiner()

    def forward(self, embeddings: torch.Tensor, class_labels: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
        instance = self.instance_loss(embeddings, instance_ids, self.instance_miner(embeddings, instance_ids))
        if self.class_weight == 0:
            return instance
        hardest = self.class_miner(embeddings, class_labels)
        return instance + self.class_weight * self.class_loss(embeddings, class_labels, hardest)
