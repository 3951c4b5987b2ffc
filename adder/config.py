"""What an adder training is asked to do, checked when it is made, without importing torch (the CLI builds
its options from these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field


class AdderOptionError(ValueError):
    """An adder option that cannot train; ``param`` names it.

    ``template`` marks the name as ``{name}``, the way :class:`embedder.errors.ConfigError` does;
    :mod:`adder.pipeline` turns one into the other (this package's model and training know nothing of the embedder).
    """

    def __init__(self, param: str, template: str) -> None:
        self.param, self.template = param, template
        super().__init__(template.replace("{", "").replace("}", ""))


@dataclass(frozen=True)
class AdderConfig:
    max_value: int = field(default=9, metadata={"help": "Train on all pairs a, b in 0..max_value."})
    epochs: int = field(default=5, metadata={"help": "Full-batch L-BFGS steps (20 iterations each)."})
    lr: float = field(default=1.0, metadata={"help": "L-BFGS step size."})
    seed: int = field(default=0, metadata={"help": "Seed of the initial weights."})
    extrapolation_range: int = field(default=99, metadata={"help": "Report exactness on all pairs in 0..this."})

    def __post_init__(self) -> None:
        for name in ("max_value", "epochs", "extrapolation_range"):
            if getattr(self, name) < 1:
                raise AdderOptionError(name, f"{{{name}}} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < float("inf"):
            raise AdderOptionError("lr", f"{{lr}} must be a finite positive number, got {self.lr}")
