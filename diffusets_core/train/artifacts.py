"""The end every training stage shares: pick the weights to ship, write the artifact and the summary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import atomic_save, load_checkpoint
from ..fileio import atomic_write_text
from ..layout import BEST_CHECKPOINT, MODEL_FILE, SUMMARY_FILE
from .loop import TrainResult

__all__ = ["load_best_weights", "strip_prefix", "write_stage_outputs"]


def strip_prefix(state: dict, prefix: str) -> dict:
    """``state`` with ``prefix`` removed from the keys that start with it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_best_weights(module: nn.Module, out_dir: str | os.PathLike, prefix: str = "") -> nn.Module:
    """``module`` (the trainer's EMA copy) with the weights of ``out_dir/best.pt`` when the trainer wrote one (the
    best validation loss), else as it is (the EMA weights of the final step). ``prefix`` is stripped from the
    checkpoint's keys (``"vae."`` when the trained module wrapped the model)."""
    best = Path(out_dir) / BEST_CHECKPOINT
    if best.is_file():
        module.load_state_dict(strip_prefix(load_checkpoint(best)["model"], prefix))
    return module


def write_stage_outputs(
    out_dir: str | os.PathLike, artifact: dict, result: TrainResult, *, stale: Iterable[Path] = (), **summary: Any
) -> dict:
    """Write a stage's ``model.pt`` artifact (atomically), delete the ``stale`` files that described the previous
    model, then write ``summary.json`` (steps, seconds, samples_per_s, best_val_loss, then ``summary``'s items)
    and return that summary."""
    out_dir = Path(out_dir)
    atomic_save(artifact, out_dir / MODEL_FILE)
    for path in stale:
        path.unlink(missing_ok=True)
    record = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "samples_per_s": round(result.samples_per_s, 1),
        "best_val_loss": result.best_val_loss,
        **summary,
    }
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(record, indent=2))
    return record
