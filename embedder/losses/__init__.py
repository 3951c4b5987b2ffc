"""Losses: the instance + class triplet loss built from pytorch-metric-learning parts, with sync-free miners and
reducer; class + instance contrast with a temperature as one matrix (``contrast``).
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "InstanceAndClassTripletLoss": ".triplet",
    "HardestTripletMiner": ".miners",
    "TwoViewTripletMiner": ".miners",
    "NonZeroMeanReducer": ".miners",
    "ClassAndInstanceContrastLoss": ".contrast",
    "supcon_loss": ".contrast",
    "two_view_ntxent": ".contrast",
    "PoolContrastLoss": ".contrast",
    "make_loss": ".contrast",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
