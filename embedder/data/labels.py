"""What a class name may be: labels are data, never paths. Checked without importing torch.

A name is shown in tables, JSON and predictions and kept in the run's metadata; nothing ever opens it as a
file. A nested folder's class is named like ``Greek/alpha``, so ``/`` is allowed between parts, but a name
that reads as a path of its own (``/etc/x``, ``../x``, ``./x``, ``a\\x``) is refused, and so is ``unknown``,
which is what a prediction answers for an image of no known class.
"""

from __future__ import annotations

from embedder.errors import ConfigError, quote

MAX_LABEL_LENGTH = 200
UNKNOWN = "unknown"


def check_label(name: str, param: str = "label") -> str:
    """``name`` if it can be a class name; else a :class:`ConfigError` on ``param`` saying why."""
    why = None
    if not name.strip():
        why = "is empty"
    elif len(name) > MAX_LABEL_LENGTH:
        why = f"is {len(name)} characters long; at most {MAX_LABEL_LENGTH}"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        why = "holds a newline or another control character"
    elif name != name.strip():
        why = "begins or ends with a space"
    elif name == UNKNOWN:
        why = "is what a prediction answers for an image of no known class: choose another name"
    elif name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        why = "looks like a path: a label is a name (Greek/alpha is one; /x, ../x, ./x and a\\x are not)"
    if why:
        raise ConfigError(param, f"the label {quote(name[:60])} {why}")
    return name
