"""The installed names of the repository's ``adder/`` and ``cli/`` folders: ``tripletshot.adder`` and
``tripletshot.cli``, so that ``pip install tripletshot`` puts no generic top-level ``adder`` or ``cli`` into
site-packages (``setup.py`` maps the folders here). In the source tree those folders sit beside this one, and
this package's path reaches them, so ``tripletshot.adder`` is the same code either way. ``embedder`` is the
library's own top-level name.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "adder").is_dir():  # the source tree: the subpackages are the repository's folders
    __path__.append(str(_HERE.parent))
