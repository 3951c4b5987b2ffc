"""Evaluation: N-way K-shot episodes with 95% intervals, a run's evaluation, pytorch-metric-learning's metrics,
the report and its figures.
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "evaluate_episodes": ".episodes",
    "evaluate_run": ".episodes",
    "write_report": ".report",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
