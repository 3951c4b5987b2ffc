"""The one mixed-precision rule of training and embedding: bf16 autocast on CUDA, float32 elsewhere.

On CUDA, bf16 runs the convolutions on tensor cores. On the CPU nothing is entered (bf16 there is slower
than float32), so an autocast the caller holds applies: a test under ``torch.autocast("cpu", torch.bfloat16)``
runs the CUDA path's code in the CUDA path's dtype.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype on ``device``: bf16 on CUDA, ``None`` (no autocast of ours) elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Autocast to :func:`autocast_dtype` on ``device``; where that is ``None``, the caller's precision."""
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype) if dtype is not None else contextlib.nullcontext()
