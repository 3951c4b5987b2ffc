"""``python -m cli.embed`` (what ``torchrun -m cli.embed`` runs)."""

from cli.embed import main

main()
