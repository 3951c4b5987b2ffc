"""``embed``: train a triplet embedder, and label classes it never saw from one example each.

One module per command; importing this package registers them all on :data:`main`. Heavy imports
(torch, faiss, pytorch-metric-learning) happen inside the commands, so ``--help`` and usage errors
answer at once.
"""

from . import calibrate, enroll, evaluate, export, forget, index, pool, predict, report, serve, train  # noqa: F401  (registers)
from .group import main

__all__ = ["main"]
