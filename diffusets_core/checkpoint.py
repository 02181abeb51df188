"""Checkpoint and artifact files: atomic ``torch.save``, safe ``torch.load`` (base layer).

Every model file the package writes (the trainer's ``last.pt``/``best.pt``, the stages' ``model.pt`` artifacts)
goes through :func:`atomic_save`, and every one it reads through :func:`load_checkpoint` (``weights_only=True``:
a checkpoint can hold tensors, numbers, strings, lists and dicts, never code). Any problem with a file raises
:class:`CheckpointError`, whose message names the file. Models build themselves from an artifact with their own
``from_artifact`` (``models.vae.VAE.from_artifact``, ``models.factory.unet_from_artifact``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .fileio import atomic_save_with
from .layout import BEST_CHECKPOINT

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "load_artifact", "load_trained"]


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupted or incompatible; the message names the file."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``
    (:func:`~diffusets_core.fileio.atomic_save_with`).

    A crash mid-write leaves the previous checkpoint intact instead of a truncated file.
    """
    atomic_save_with(path, lambda f: torch.save(obj, f))


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


def load_artifact(path: str | os.PathLike, kind: str, what: str, map_location: str | torch.device = "cpu") -> dict:
    """A stage artifact (``{"kind", "config", "state_dict", "meta", ...}``) whose ``kind`` must be ``kind``
    (``"diffusets.vae"``, ``"diffusets.unet"``); ``what`` names it in the error ("VAE", "U-Net").

    Raises:
        CheckpointError: unreadable file, or an artifact of another kind.
    """
    ck = load_checkpoint(path, map_location=map_location)
    if ck.get("kind") != kind:
        raise CheckpointError(f"{path}: not a DiffuSETS {what} artifact (kind={ck.get('kind')!r})")
    return ck


def load_trained(path: str | os.PathLike, config_key: str, what: str) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a model trained by :class:`~diffusets_core.train.loop.Trainer` (the judges of
    :mod:`diffusets_core.eval`: CLIP, classifier).

    ``path`` is a checkpoint or a run folder (meaning its ``best.pt``); ``meta[config_key]`` must hold the
    model config. ``last.pt`` files contribute their EMA weights, as ``best.pt`` files do. Raises
    :class:`CheckpointError` (naming the file) when it is missing, unreadable or holds no ``meta[config_key]``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BEST_CHECKPOINT
    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("meta", {})
    if config_key not in meta:
        raise CheckpointError(f"{path}: not {what} checkpoint (no meta.{config_key})")
    ema = checkpoint.get("ema")
    state = ema["shadow"] if isinstance(ema, dict) and "shadow" in ema else checkpoint["model"]
    return meta[config_key], state
