"""Numbers as people read them, one rule for the CLI's tables and the report's page (torch-free)."""

from __future__ import annotations


def percent(value: float | None, ci: float | None = None) -> str:
    """``0.756`` as ``75.6%``, with ``± 0.7`` for a 95% interval; ``-`` for a value that was not measured."""
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{100 * value:.1f}%" + (f" ± {100 * ci:.1f}" if ci is not None and ci == ci else "")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``, ``1,797 images``: a count and a noun that agree (``many``: an irregular plural)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
