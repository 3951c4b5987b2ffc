"""Training: ``train`` / ``resume`` and ``train_one_epoch``, the checkpoint, augmentation, interrupts, DDP and
devices.
"""

from __future__ import annotations

from embedder.utils.lazy import lazy_exports

_EXPORTS = {
    "train": ".trainer",
    "resume": ".trainer",
    "train_one_epoch": ".trainer",
    "TrainingState": ".checkpoint",
    "Interrupted": ".interrupt",
    "resolve_device": ".devices",
    "augment_batch": ".augment",
    "AugmentConfig": ".augment",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
