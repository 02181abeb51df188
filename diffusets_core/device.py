"""Which torch device a stage runs on (base layer: used by training, inference and evaluation alike)."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks the local CUDA device (LOCAL_RANK under torchrun), else MPS, else CPU."""
    if spec != "auto":
        return torch.device(spec)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
