"""Class lists as users type them (``0,1,2``, ``0-4``, ``0-2,7``), parsed without importing torch.

Parsing is syntax only: :class:`~embedder.config.TrainConfig` checks the list itself (distinct,
non-negative, at least two), and training checks it against the dataset (:func:`check_in_dataset`).
"""

from __future__ import annotations

from .errors import ConfigError, quote


def parse_classes(text: str) -> list[int]:
    """Parse ``"0,1,2"``, ``"0-4"`` or ``"0-2,7"`` into a list of class labels, in the order given."""
    classes: list[int] = []
    if not text or not text.strip():
        raise ConfigError("classes", "{classes} is empty: give class labels like 0,1,2 or a range like 0-4")
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            values = list(range(int(lo), int(hi) + 1)) if sep and lo else [int(part)]
        except ValueError:
            message = f"{{classes}}: {quote(part)} is not a class label or a range like 0-4"
            raise ConfigError("classes", message) from None
        if sep and lo and int(hi) < int(lo):
            raise ConfigError("classes", f"{{classes}}: range {quote(part)} runs backwards")
        classes.extend(values)
    return classes


def check_in_dataset(classes: list[int], available: list[int]) -> None:
    """Raise :class:`ConfigError` if a class is not one of the dataset's ``available`` labels."""
    missing = [c for c in classes if c not in available]
    if missing:
        raise ConfigError(
            "classes",
            f"{{classes}}: {', '.join(map(str, missing))} not in the dataset, which has classes "
            f"{min(available)}-{max(available)}",
        )
