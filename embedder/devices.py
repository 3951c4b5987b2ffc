"""Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a ``torch.device`` that exists."""

from __future__ import annotations

import torch

from .errors import DeviceError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Return the device named by ``spec``, or raise :class:`DeviceError` with a clear message.

    ``auto`` is CUDA when available, else the CPU.
    """
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index_text = spec.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise DeviceError(f"bad device {spec!r}: expected cuda or cuda:N with N a GPU index")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec} was asked for, but CUDA is not available on this machine "
                "(use --device cpu or --device auto)"
            )
        index = int(index_text) if index_text else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"--device {spec}: no such GPU, this machine has {count} (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}: expected auto, cpu, cuda or cuda:N")
