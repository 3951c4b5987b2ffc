"""Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a ``torch.device`` that exists."""

from __future__ import annotations

import torch

from embedder.errors import DeviceError, quote


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Return the device named by ``spec``, or raise :class:`DeviceError` naming the ``device`` parameter.

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
            raise DeviceError("device", f"bad {{device}} {quote(spec)}: expected cuda or cuda:N with N a GPU index")
        if not torch.cuda.is_available():
            raise DeviceError(
                "device",
                f"{{device}} {spec} was asked for, but CUDA is not available on this machine (use cpu or auto)",
            )
        index = int(index_text) if index_text else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError("device", f"{{device}} {spec}: no such GPU, this machine has {count}")
        return torch.device("cuda", index)
    raise DeviceError("device", f"unknown {{device}} {quote(spec)}: expected auto, cpu, cuda or cuda:N")
