"""Few-shot: ``FewShotClassifier(nn.Module)`` and its methods (``NearestNeighbor``, ``Prototype``, and
``PoolRefined`` over an unlabelled pool), the open-set rule (``Calibration``), and N-way 1-shot episodes drawn once
to score any features on (``FixedEpisodes``).
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "FewShotClassifier": ".classifiers",
    "NearestNeighbor": ".classifiers",
    "Prototype": ".classifiers",
    "PoolRefined": ".classifiers",
    "Refinement": ".pool",
    "summarise_pool": ".pool",
    "CLASSIFIERS": ".classifiers",
    "make_classifier": ".classifiers",
    "Calibration": ".openset",
    "calibrate": ".openset",
    "auroc": ".openset",
    "FixedEpisodes": ".fixed_episodes",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
