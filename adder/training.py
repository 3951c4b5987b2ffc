"""Training the linear adder with MSE on every pair in range, and how exact it came out.

Addition is linear, so the right weights are (1, 1) and 0, and a linear model that finds them
is exact far outside the range it was trained on. It learns them from the MSE by L-BFGS; nothing
is set by hand. This module knows nothing of runs, files or images (see :mod:`adder.pipeline`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config import AdderConfig
from .model import LinearAdder


@dataclass(frozen=True)
class AdderReport:
    max_value: int
    epochs: int
    final_mse: float
    in_range_exact: float  # fraction of pairs in 0..max_value whose rounded sum is exact
    extrapolation_range: int
    extrapolation_exact: float  # the same over 0..extrapolation_range
    weights: list[float]
    bias: float

    def as_dict(self) -> dict:
        return asdict(self)


def all_pairs(max_value: int, device: torch.device | str = "cpu") -> torch.Tensor:
    values = torch.arange(max_value + 1, dtype=torch.float64, device=device)
    return torch.cartesian_prod(values, values)


def exact_fraction(model: LinearAdder, max_value: int) -> float:
    pairs = all_pairs(max_value, next(model.parameters()).device)
    with torch.inference_mode():
        predicted = model(pairs).round()
    return float((predicted == pairs.sum(1)).double().mean())


def train_adder(
    config: AdderConfig = AdderConfig(), device: torch.device | str = "cpu"
) -> tuple[LinearAdder, AdderReport]:
    """Fit the adder by L-BFGS on the MSE over all pairs in ``0..max_value``; report exactness in and out of range."""
    torch.manual_seed(config.seed)
    model = LinearAdder().double().to(device)  # float64: exact sums far out of range
    pairs = all_pairs(config.max_value, device)
    targets = pairs.sum(1)
    # MSE of a linear model is a convex quadratic: L-BFGS reaches the exact weights to float64
    # precision in a few steps, where Adam stalls at ~1e-3 and large sums then round wrongly.
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=config.lr,
        max_iter=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    loss_fn = nn.MSELoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(pairs), targets)
        loss.backward()
        return loss

    for _ in range(config.epochs):
        optimizer.step(closure)
    with torch.inference_mode():
        final = float(loss_fn(model(pairs), targets))
    weights = (model.linear.weight.detach()[0]).tolist()
    report = AdderReport(
        max_value=config.max_value,
        epochs=config.epochs,
        final_mse=final,
        in_range_exact=exact_fraction(model, config.max_value),
        extrapolation_range=config.extrapolation_range,
        extrapolation_exact=exact_fraction(model, config.extrapolation_range),
        weights=weights,
        bias=float(model.linear.bias.detach()[0]),
    )
    return model.eval(), report
