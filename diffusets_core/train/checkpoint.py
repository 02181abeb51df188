"""Atomic checkpoint files that carry their full configuration."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupted or incompatible; the message names the file."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous checkpoint intact instead of a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; unreadable files raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, wrong format, pickled code objects...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def load_trained(path: str | os.PathLike, config_key: str, what: str) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a model trained by :class:`~diffusets_core.train.loop.Trainer`.

    ``path`` is a checkpoint or a run folder (meaning its ``best.pt``); ``meta[config_key]`` must hold the
    model config. ``last.pt`` files contribute their EMA weights, as ``best.pt`` files do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    ck = load_checkpoint(path)
    meta = ck.get("meta", {})
    if config_key not in meta:
        raise CheckpointError(f"{path}: not {what} checkpoint (no meta.{config_key})")
    ema = ck.get("ema")
    state = ema["shadow"] if isinstance(ema, dict) and "shadow" in ema else ck["model"]
    return meta[config_key], state
