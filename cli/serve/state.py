"""The run one worker serves, loaded again whenever its manifest changes, and the writes that change it.

Every worker is its own process with its own copy of the run. Before each request it compares ``run.json``'s
identity (inode, size, mtime: a commit replaces the file) with the one it loaded; if another worker, or the
CLI, committed since, it loads the run again. Writes go through the library (:func:`embedder.enrol`,
:func:`embedder.forget`), which take the run's lock; a write that finds the lock held waits up to
``lock_timeout`` seconds, then is refused with a 409.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from embedder import Run
from embedder.runs.store import MANIFEST_FILE, RunBusyError

from .errors import ApiError
from .settings import ServeSettings

log = logging.getLogger("tripletshot.serve")
T = TypeVar("T")


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class RunState:
    """One worker's view of the run: loaded on first use and again after every commit, by anyone."""

    def __init__(self, settings: ServeSettings) -> None:
        from embedder import resolve_device

        self.settings = settings
        self.path = Path(settings.run_dir)
        self.device = resolve_device(settings.device)
        self._lock = threading.Lock()  # one reload at a time
        self._writes = threading.Lock()  # this worker's writes one at a time: the run's lock is per process
        self._run: Run | None = None
        self._loaded: tuple[int, int, int] | None = None
        self._cache: dict[str, Any] = {}  # things derived from the loaded run: emptied when it changes
        self._lasting: dict[tuple, Any] = {}  # things derived from one file of it, by that file's checksum

    @property
    def run_dir(self) -> str:
        return str(self.path)

    def run(self) -> Run:
        """The run as it is now on disk."""
        now = _identity(self.path / MANIFEST_FILE)
        if self._run is None or now != self._loaded:
            with self._lock:
                now = _identity(self.path / MANIFEST_FILE)
                if self._run is None or now != self._loaded:
                    self._run, self._loaded = Run.load(self.path, self.device), now
                    self._cache = {}
        return self._run

    def cached(self, key: str, make: Callable[[Run], T]) -> T:
        """``make(run)``, kept until the run changes."""
        run = self.run()
        cache = self._cache
        if key not in cache:
            cache[key] = make(run)
        return cache[key]

    def lasting(self, role: str, make: Callable[[Run], T]) -> T:
        """``make(run)``, kept while the run's ``role`` file stays the same (the adder, the training's pictures):
        an enrolment changes the index, not those."""
        run = self.run()
        key = (role, run.manifest["files"].get(role, {}).get("sha256"))
        if key not in self._lasting:
            self._lasting = {k: v for k, v in self._lasting.items() if k[0] != role}
            self._lasting[key] = make(run)
        return self._lasting[key]

    def write(self, change: Callable[[], T]) -> T:
        """Run ``change`` (which takes the run's lock itself), waiting up to ``lock_timeout`` for another holder."""
        deadline = time.monotonic() + self.settings.lock_timeout
        if not self._writes.acquire(timeout=self.settings.lock_timeout):
            raise ApiError(409, None, f"another write to {self.path} is still running; try again when it is done")
        try:
            while True:
                try:
                    return change()
                except RunBusyError as exc:
                    if time.monotonic() >= deadline:
                        raise ApiError(
                            409,
                            None,
                            f"{exc} (waited {self.settings.lock_timeout:g} s); try again when it is done",
                        ) from None
                time.sleep(0.02)
        finally:
            self._writes.release()
