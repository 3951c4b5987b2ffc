"""Errors a user can act on. The CLI prints them as one line, without a traceback.

This module imports nothing heavy, so the CLI can catch these without loading torch.
"""

from __future__ import annotations


class TripletshotError(Exception):
    """Base class: something went wrong that the user can fix. CLI exit code 1."""

    exit_code = 1


class UsageError(TripletshotError):
    """A bad option or argument. CLI exit code 2, like click's own usage errors."""

    exit_code = 2


class DeviceError(UsageError):
    """The requested device does not exist on this machine."""


class DataNotFoundError(TripletshotError):
    """The dataset's files are not on disk and could not be downloaded."""


class RunError(TripletshotError):
    """A run directory is missing, incomplete or damaged."""
