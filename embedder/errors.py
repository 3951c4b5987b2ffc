"""tripletshot's exceptions: ordinary Python exceptions of one family, :class:`TripletshotError`.

Each is also the built-in a Python user would catch (``ValueError``, ``FileNotFoundError``...).
A :class:`ConfigError` names the *parameter* that is wrong. Its message marks parameter names as
``{name}``; ``str()`` shows them as Python names (``epochs``), and :meth:`ConfigError.render`
lets a front end show them its own way (the CLI: ``--epochs``). Exit codes are the CLI's business.

This module imports nothing heavy, so the CLI can catch these without loading torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NAME = re.compile(r"\{([a-z_]+)\}")


class TripletshotError(Exception):
    """Base class: something went wrong that the user can fix."""


class ConfigError(TripletshotError, ValueError):
    """A parameter has a value that cannot work. ``param`` is its name, as in the Python API."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.template = message
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = str) -> str:
        """The message with each marked parameter name passed through ``name``."""
        return _NAME.sub(lambda m: name(m.group(1)), self.template)


def quote(value: object) -> str:
    """``repr(value)`` made safe to put inside a :class:`ConfigError` template."""
    return repr(value).replace("{", "(").replace("}", ")")


class DeviceError(ConfigError):
    """The requested device does not exist on this machine."""


class DataNotFoundError(TripletshotError, FileNotFoundError):
    """The dataset's files are not on disk and could not be downloaded."""


class DataError(TripletshotError, ValueError):
    """A dataset file exists but is not what it should be (truncated, wrong format)."""


class RunNotFoundError(TripletshotError, FileNotFoundError):
    """There is no run where one was expected."""


class RunError(TripletshotError):
    """A run directory is incomplete, damaged, in use or read-only."""


class ImageError(TripletshotError, ValueError):
    """The file is not an image this program can read, or there is nothing drawn in it."""


class EmptyIndexError(TripletshotError, ValueError):
    """A search or a prediction was asked of an index that holds no supports."""


class ClassNotFoundError(TripletshotError, LookupError):
    """A class name that the run's index does not hold."""


class UnknownImageError(TripletshotError, ValueError):
    """An image that the run calls unknown where an answer was required (``adder predict``)."""
