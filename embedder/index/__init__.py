"""Index: ``SupportIndex``, the faiss index of support vectors with their labels, and the rules for which vectors
stand for a class.
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "SupportIndex": ".support_index",
    "similarity_to_distance": ".support_index",
    "centroid_supports": ".supports",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
