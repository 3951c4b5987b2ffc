"""Features that involve no learning, to judge a trained embedder against: they live in the library now
(:mod:`embedder.models.baselines`, which training scores on its validation classes); bench scripts import them here.
"""

from __future__ import annotations

from embedder.models.baselines import hog_features, raw_pixel_features

__all__ = ["hog_features", "raw_pixel_features"]
