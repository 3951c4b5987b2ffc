"""Ctrl-C and SIGTERM as a *request* to stop: training finishes its step, checkpoints, then exits.

A signal handler that raised at once could land in the middle of an optimizer step or a save. This
one only records the signal; the training loop looks at it between steps. A second signal gets the
previous handler back, so pressing Ctrl-C twice still stops a process that hangs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from embedder.errors import TripletshotError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(TripletshotError):
    """Training stopped on request after saving a resumable checkpoint (the CLI exits 130, like Ctrl-C)."""


class StopRequest:
    """``with StopRequest() as stop:`` ... ``if stop:`` -- true once SIGINT or SIGTERM arrived.

    Outside the main thread signals cannot be caught, so there it stays false and changes nothing.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()
