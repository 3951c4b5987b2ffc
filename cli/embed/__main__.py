"""``python -m tripletshot.cli.embed``, what ``torchrun -m tripletshot.cli.embed`` runs (``cli.embed`` in the tree)."""

from . import main

main()
