"""Features that involve no learning, to judge a trained embedder against: raw pixels and a HOG-like descriptor.

A trained embedder that labels unseen classes worse than these has not learned what transfers. Training scores
both on its validation classes' episodes (:mod:`embedder.training.held_out`), and ``bench/oneshot.py`` reports
them next to a run on the same episodes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BASELINES = {"pixels": "raw pixels", "hog": "HOG-like"}  # name in run.json: name in words


def raw_pixel_features(images: torch.Tensor) -> np.ndarray:
    """Flattened pixels, L2-normalised: 1-NN on these is cosine 1-NN on raw pixels."""
    flat = images.reshape(len(images), -1).float()
    return F.normalize(flat, dim=1).numpy()


def hog_features(images: torch.Tensor, cell: int = 7, bins: int = 9) -> np.ndarray:
    """Gradient-orientation histograms over ``cell x cell`` cells (HOG-like), L2-normalised.

    Unsigned orientations, soft-binned into ``bins``, weighted by gradient magnitude, each cell's
    histogram normalised on its own before the whole vector is.
    """
    x = images.reshape(len(images), 1, *images.shape[-2:]).float() / 255.0
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(x, sobel.view(1, 1, 3, 3), padding=1)
    gy = F.conv2d(x, sobel.t().reshape(1, 1, 3, 3), padding=1)
    magnitude = torch.sqrt(gx**2 + gy**2)
    angle = torch.atan2(gy, gx) % math.pi  # unsigned orientation in [0, pi)
    position = angle / math.pi * bins
    lower = position.floor().long() % bins
    upper_weight = position - position.floor()
    histogram = torch.zeros(len(x), bins, *x.shape[-2:])
    histogram.scatter_add_(1, lower, magnitude * (1 - upper_weight))
    histogram.scatter_add_(1, (lower + 1) % bins, magnitude * upper_weight)
    cells = F.avg_pool2d(histogram, cell)  # (N, bins, H/cell, W/cell)
    cells = F.normalize(cells, dim=1)
    return F.normalize(cells.flatten(1), dim=1).numpy()


def baseline_features(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Every baseline's features of uint8 ``images`` on the CPU, by name (:data:`BASELINES`)."""
    images = images.cpu()
    return {"pixels": raw_pixel_features(images), "hog": hog_features(images)}
