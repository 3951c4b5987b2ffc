"""Runs: a trained run on disk and what is done to it: the store (atomic files, manifest, lock), ``Run``,
enrolment, prediction, calibration and export.
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "Run": ".run",
    "RunDir": ".store",
    "enrol": ".enrolment",
    "forget": ".enrolment",
    "indexed_classes": ".enrolment",
    "predict": ".prediction",
    "recalibrate": ".calibration",
    "export_run": ".export",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
