"""tripletshot's adder: a linear network trained with MSE to add a recognised digit to a number."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LinearAdder": "model",
    "train_adder": "model",
    "load_adder": "model",
    "save_adder": "model",
    "AdderReport": "model",
    "parse_number": "predict",
    "predict_sums": "predict",
    "evaluate_adder": "predict",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
