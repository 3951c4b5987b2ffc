"""A *linear* adder: ``y = w . (a, b) + c``, no activation, trained with MSE on every pair in range.

Addition is linear, so the right weights are (1, 1) and 0, and a linear model that finds them
is exact far outside the range it was trained on. It learns them from the MSE by L-BFGS; nothing
is set by hand.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from embedder.artifacts import tensors_to_bytes
from embedder.errors import RunError, UsageError
from embedder.rundir import RunDir


class LinearAdder(nn.Module):
    """One ``nn.Linear(2, 1)`` on inputs divided by a fixed scale, which only conditions the optimisation."""

    def __init__(self, scale: float = 9.0) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` float pairs to ``(N,)`` sums."""
        return self.linear(pairs / self.scale).squeeze(-1) * self.scale


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
    max_value: int = 9,
    epochs: int = 5,
    lr: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    extrapolation_range: int = 99,
) -> tuple[LinearAdder, AdderReport]:
    """Fit the adder by L-BFGS on the MSE over all pairs in ``0..max_value``; report exactness in and out of range."""
    if max_value < 1:
        raise UsageError("--max-value must be at least 1")
    if epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if not 0 < lr < float("inf"):
        raise UsageError("--lr must be a finite positive number")
    torch.manual_seed(seed)
    model = LinearAdder(scale=max_value).double().to(device)  # float64: exact sums far out of range
    pairs = all_pairs(max_value, device)
    targets = pairs.sum(1)
    # MSE of a linear model is a convex quadratic: L-BFGS reaches the exact weights to float64
    # precision in a few steps, where Adam stalls at ~1e-3 and large sums then round wrongly.
    optimizer = torch.optim.LBFGS(
        model.parameters(), lr=lr, max_iter=20, line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0
    )
    loss_fn = nn.MSELoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(pairs), targets)
        loss.backward()
        return loss

    for _ in range(epochs):
        optimizer.step(closure)
    with torch.inference_mode():
        final = float(loss_fn(model(pairs), targets))
    weights = (model.linear.weight.detach()[0]).tolist()
    report = AdderReport(
        max_value=max_value,
        epochs=epochs,
        final_mse=final,
        in_range_exact=exact_fraction(model, max_value),
        extrapolation_range=extrapolation_range,
        extrapolation_exact=exact_fraction(model, extrapolation_range),
        weights=weights,
        bias=float(model.linear.bias.detach()[0] * model.scale),
    )
    return model.eval(), report


def save_adder(run_dir: str | os.PathLike, model: LinearAdder, report: AdderReport) -> None:
    """Commit the adder into the run's manifest (atomic, checksummed, under the run's lock)."""
    RunDir(run_dir).commit({"adder": tensors_to_bytes({"model": model.state_dict(), "report": report.as_dict()})})


def has_adder(run_dir: str | os.PathLike) -> bool:
    store = RunDir(run_dir)
    return store.exists() and store.has("adder")


def load_adder(run_dir: str | os.PathLike) -> tuple[LinearAdder, AdderReport]:
    store = RunDir(run_dir)
    saved = store.read_tensors("adder")
    try:
        report = AdderReport(**saved["report"])
        model = LinearAdder(scale=report.max_value).double()
        model.load_state_dict(saved["model"])
    except (KeyError, TypeError, RuntimeError):
        raise RunError(f"the adder file in {run_dir} is not a tripletshot adder") from None
    return model.eval(), report
