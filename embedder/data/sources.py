"""The names of where training data comes from, as options give them (no torch: the CLI's help reads them).

``--unlabelled``: no pool (``none``), the train split's images of every class not trained on (``rest``, labels never
read), or a folder; a ``folder:PATH`` dataset's ``PATH/unlabelled/`` is its pool, never a class, and its
``PATH/unknown/`` holds images of no class, the impostors its threshold is fitted and checked on.
"""

from __future__ import annotations

NO_POOL, REST_POOL = "none", "rest"
POOL_FOLDER = "unlabelled"  # folder:PATH/unlabelled/ holds a folder dataset's pool, not a class
UNKNOWN_FOLDER = "unknown"  # folder:PATH/unknown/ holds images of no class: the open-set threshold's impostors
