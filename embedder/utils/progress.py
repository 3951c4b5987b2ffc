"""How long work shows its progress: a tqdm bar when stderr is a terminal, whole lines otherwise, or nothing.

Every loop that takes a while (training steps, embedding many images, episodes, the report's figures)
takes ``progress: bool``; ``False`` is ``--quiet`` (and what tests and benchmarks pass). With it on, a
bar is drawn only where a person watches one: redirected to a file, stderr gets no carriage-return
frames, only the whole lines :func:`progress_line` writes (training writes one per epoch). Nothing goes to
stdout, which carries results alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_description_str(self, desc: str) -> Any: ...


class _NoBar:
    """What a loop updates when no bar is drawn."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description_str(self, desc: str) -> None:
        pass


def draws_bars(progress: bool) -> bool:
    """Whether progress shows as bars: asked for, and stderr is a terminal."""
    return progress and sys.stderr.isatty()


@contextmanager
def progress_bar(
    total: int, description: str, progress: bool = True, initial: int = 0, unit: str = "it"
) -> Iterator[Bar]:
    """A tqdm bar on stderr that disappears when done, or a do-nothing one where bars are not drawn."""
    if not draws_bars(progress):
        yield _NoBar()
        return
    from tqdm import tqdm  # only here: even disabled, a tqdm makes a multiprocessing lock

    with tqdm(total=total, initial=initial, desc=description, unit=unit, leave=False, file=sys.stderr) as drawn:
        yield drawn


def progress_line(message: str, progress: bool = True) -> None:
    """One whole line of progress on stderr; through tqdm where bars are drawn, so an open bar stays below it."""
    if not progress:
        return
    if draws_bars(progress):
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)


DAY, YEAR = 86_400, 365 * 86_400


def duration(seconds: float) -> str:
    """``42 s``, ``6 min 12 s``, ``1 h 05 min``, ``12 days``, ``over a year``: a time left, as a person reads it
    (beyond a year, the digits would only say that it will not end)."""
    if not seconds < YEAR:  # NaN and infinity too
        return "over a year"
    seconds = max(0, round(seconds))
    if seconds >= 2 * DAY:
        return f"{seconds // DAY} days"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
