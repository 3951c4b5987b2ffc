"""The package version, apart from ``embedder/__init__`` so modules can read it without importing the root."""

__version__ = "0.7.0"
