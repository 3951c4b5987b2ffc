"""Models: ``EmbeddingNet`` (the CNN and its loss-only projection head) and ``Embedder`` (pixels to unit vectors,
with the saved ``Centering``); the baselines that learn nothing (raw pixels, HOG-like features).
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "EmbeddingNet": ".network",
    "Embedder": ".embedder",
    "Centering": ".embedder",
    "raw_pixel_features": ".baselines",
    "hog_features": ".baselines",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
