"""Checkpoints of models trained by :class:`~diffusets_core.train.loop.Trainer` (``last.pt``/``best.pt``).

The file I/O itself (atomic save, ``weights_only`` load, :class:`CheckpointError`) lives in the base layer,
:mod:`diffusets_core.checkpoint`, so inference can load artifacts without importing the training package.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..checkpoint import CheckpointError, load_checkpoint
from ..layout import BEST_CHECKPOINT


def load_trained(path: str | os.PathLike, config_key: str, what: str) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a model trained by :class:`~diffusets_core.train.loop.Trainer`.

    ``path`` is a checkpoint or a run folder (meaning its ``best.pt``); ``meta[config_key]`` must hold the
    model config. ``last.pt`` files contribute their EMA weights, as ``best.pt`` files do.
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
