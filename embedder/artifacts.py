"""Atomic file writes and safe loads for run directories.

A file of a run is either the old complete version or the new one, never half written:
write a temp file in the same folder, flush and fsync it, then ``os.replace``. Weights load
with ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import RunError


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a run folder is shared like any other file
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def tensors_to_bytes(obj: Any) -> bytes:
    """``torch.save`` a dict of tensors and plain values into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def tensors_from_bytes(data: bytes, source: str, device: torch.device | str = "cpu") -> Any:
    """Load what :func:`tensors_to_bytes` made, refusing anything that would unpickle code."""
    try:
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code with an UnpicklingError
        raise RunError(f"{source} is damaged or not a tripletshot file ({type(exc).__name__})") from None


def load_tensors(path: str | os.PathLike, device: torch.device | str = "cpu") -> Any:
    """Load a file of :func:`tensors_to_bytes` bytes, refusing anything that would unpickle code."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    return tensors_from_bytes(data, str(path), device)
