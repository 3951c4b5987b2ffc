"""tripletshot's adder: a linear network trained with MSE to add a recognised digit to a number.

``adder.model`` and ``adder.training`` know only numbers; ``adder.pipeline`` joins them to images and runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LinearAdder": "model",
    "train_adder": "training",
    "AdderReport": "training",
    "parse_number": "pipeline",
    "predict_sums": "pipeline",
    "evaluate_adder": "pipeline",
    "load_adder": "pipeline",
    "save_adder": "pipeline",
    "adder_for": "pipeline",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
