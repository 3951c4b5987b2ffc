"""Data: the dataset type and its registry (IDX files, scikit-learn's digits, ``folder:PATH``), images from
files, class lists, labels, splits and samplers.
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "Dataset": ".dataset",
    "DATASETS": ".datasets",
    "load_dataset": ".datasets",
    "load_image": ".images",
    "parse_classes": ".classes",
    "resolve_classes": ".classes",
    "check_label": ".labels",
    "BalancedBatchSampler": ".sampling",
    "split_validation": ".sampling",
    "sample_supports": ".sampling",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
