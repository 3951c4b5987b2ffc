"""A *linear* adder: ``y = w . (a, b) + c``, one ``nn.Linear(2, 1)``, no activation.

It knows nothing of files, images or digits: pairs of numbers in, their (learned) sums out.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearAdder(nn.Module):
    """``(N, 2)`` float pairs to ``(N,)`` sums through one linear layer; :func:`adder.training.train_adder` fits it.

    In float64 with the weights training finds, exactly (1, 1) and a bias under 1e-30, the rounded
    output is the exact sum whenever ``|a + b| <= 2**53`` (float64's integers), e.g. a digit 0..9 plus
    any number with ``|number| <= 2**53 - 9``: :data:`adder.pipeline.MAX_NUMBER`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.linear(pairs).squeeze(-1)
