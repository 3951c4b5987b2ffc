"""Numbers as people read them, one rule for the CLI's tables and the report's page (torch-free)."""

from __future__ import annotations


def percent(value: float | None, ci: float | None = None) -> str:
    """``0.756`` as ``75.6%``, with ``± 0.7`` for a 95% interval; ``-`` for a value that was not measured."""
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{100 * value:.1f}%" + (f" ± {100 * ci:.1f}" if ci is not None and ci == ci else "")
