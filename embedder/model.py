"""The Siamese embedder: one CNN with shared weights embeds anchors, positives and negatives alike.

The retrieval embedding keeps the spatial layout: the last feature map is average-pooled
locally to a 4x4 grid and flattened, not pooled globally. A global pool throws away *where*
strokes are, which is what tells unseen digits apart; measured on MNIST (DEVELOPERS.md), local
pooling and retrieving from the backbone rather than the projection head transfer best to
classes never seen in training. The projection head exists only for the training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRID = 4  # the embedding is a GRID x GRID map of local descriptors


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class EmbeddingNet(nn.Module):
    """CNN mapping ``(B, 1, 28, 28)`` normalised images to L2-normalised embeddings of ``embedding_dim``.

    ``embedding_dim`` must be a multiple of 16: it is ``channels x 4 x 4``.
    """

    def __init__(self, embedding_dim: int = 1024, width: int = 32, head_dim: int = 128) -> None:
        super().__init__()
        if embedding_dim <= 0 or embedding_dim % (GRID * GRID):
            raise ValueError(f"embedding_dim must be a positive multiple of {GRID * GRID}, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        channels = embedding_dim // (GRID * GRID)
        self.backbone = nn.Sequential(
            _conv_block(1, width),
            nn.MaxPool2d(2),  # 14x14
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),  # 7x7
            _conv_block(2 * width, 2 * width),
            nn.Conv2d(2 * width, channels, 3, padding=1),
            nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),  # 4x4, local pooling
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(embedding_dim, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Linear(256, head_dim)
        )
        # Mean of the training classes' raw features; subtracting it before L2 normalisation
        # ("centering", SimpleShot) helps nearest-neighbour retrieval. Set after training.
        self.register_buffer("feature_mean", torch.zeros(embedding_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw backbone features, before centering and normalisation."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised retrieval embeddings, the ones that go into the faiss index."""
        return F.normalize(self.features(x).float() - self.feature_mean, dim=1)

    def training_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised projection-head outputs, used only by the training loss."""
        return F.normalize(self.head(self.features(x)).float(), dim=1)
