"""Class lists as users type them (``0,1,2``, ``0-4``), parsed and checked without importing torch.

The CLI checks ``--classes`` with these before the ~5 s import of torch, so a typo answers at once.
"""

from __future__ import annotations

from .errors import UsageError


def parse_classes(text: str, available: list[int] | None = None) -> list[int]:
    """Parse ``"0,1,2"``, ``"0-4"`` or ``"0-2,7"`` into a sorted list of distinct class labels."""
    classes: list[int] = []
    if not text or not text.strip():
        raise UsageError("--classes is empty: give class labels like 0,1,2 or a range like 0-4")
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            values = list(range(int(lo), int(hi) + 1)) if sep and lo else [int(part)]
        except ValueError:
            raise UsageError(f"--classes: {part!r} is not a class label or a range like 0-4") from None
        if sep and lo and int(hi) < int(lo):
            raise UsageError(f"--classes: range {part!r} runs backwards")
        classes.extend(values)
    return check_classes(classes, available)


def check_classes(classes: list[int], available: list[int] | None = None) -> list[int]:
    """Raise :class:`UsageError` unless ``classes`` are two or more distinct dataset labels; return them sorted."""
    seen: set[int] = set()
    for value in classes:
        if value < 0:
            raise UsageError(f"--classes: {value} is negative; class labels start at 0")
        if value in seen:
            raise UsageError(f"--classes: class {value} is given twice")
        seen.add(value)
    if available is not None:
        missing = [c for c in classes if c not in available]
        if missing:
            raise UsageError(
                f"--classes: {', '.join(map(str, missing))} not in the dataset, which has classes "
                f"{min(available)}-{max(available)}"
            )
    if len(classes) < 2:
        raise UsageError("--classes: a triplet needs at least two classes")
    return sorted(classes)
