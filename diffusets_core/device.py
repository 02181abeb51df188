"""Which torch device a stage runs on (base layer: used by training, inference and evaluation alike)."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device", "check_device", "device_name"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks the local CUDA device (LOCAL_RANK under torchrun), else MPS, else CPU."""
    if spec != "auto":
        return torch.device(spec)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(spec: str) -> torch.device:
    """``resolve_device(spec)``, refusing a device this machine does not have.

    Raises:
        ValueError: ``spec`` is not a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``auto``), or names
            CUDA/MPS where it is not available, or a CUDA index beyond the visible devices. Checked before a
            command writes anything, instead of failing when the first tensor moves.
    """
    try:
        device = resolve_device(spec)
    except RuntimeError:
        raise ValueError(f"not a device: {spec!r} (auto, cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{spec!r}: CUDA is not available on this machine (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "cpu" and device.index is not None:
        raise ValueError(f"{spec!r}: the CPU has no device index (use cpu)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{spec!r}: MPS is not available on this machine (use auto or cpu)")
    return device


def device_name(device: torch.device) -> str:
    """What a stage records about the device it ran on: ``cuda:0 (NVIDIA H100 80GB HBM3)``, ``cpu``, ``mps``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
