"""Command-line entry points ``embed`` and ``adder``: thin layers over the ``embedder`` and ``adder`` APIs."""
