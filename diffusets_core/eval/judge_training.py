"""How the benchmark's own small models (its ECG-text CLIP and its classifier) are trained when no settings are given.

Both are judges fitted on a run's real training split, not the subject of the benchmark, so they share one recipe
and differ only in weight decay (the CLIP follows the paper's optimiser, weight decay 1e-3; the classifier uses
3e-4). The paper's CLIP batch of 256 per contrastive chunk is too slow for the CPU profile: batch 64 here.
"""

from __future__ import annotations

from ..train.loop import TrainConfig

__all__ = ["judge_train_config"]


def judge_train_config(*, weight_decay: float) -> TrainConfig:
    """300 steps, batch 64, AdamW lr 1e-3 with ``weight_decay``, 20 warm-up steps, EMA 0.99, validation every 50
    steps (selects ``best.pt``), no intermediate checkpoints, no progress bar."""
    return TrainConfig(
        max_steps=300,
        batch_size=64,
        lr=1e-3,
        weight_decay=weight_decay,
        warmup_steps=20,
        ema_decay=0.99,
        val_every=50,
        checkpoint_every=100000,
        progress=False,
    )
