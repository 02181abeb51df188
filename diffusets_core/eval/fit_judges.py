"""Training the benchmark's judges on a run's real TRAINING split: the ECG-text CLIP whose features the set
metrics use (:func:`fit_clip`) and the multi-label classifier that reads generated ECGs (:func:`fit_classifier`),
with the training settings every judge network shares (:func:`judge_train_config`, also used for TSTR / TRTR).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..train.loop import TrainConfig
from .classifiers import choose_thresholds, predict_proba, train_classifier
from .clip import ClipFeaturizer, train_clip

__all__ = ["fit_clip", "fit_classifier", "judge_train_config"]


def judge_train_config(steps: int, seed: int, batch_size: int = 64, wd: float = 1e-3) -> TrainConfig:
    """The training settings of every judge network (CLIP, classifier, TSTR / TRTR classifiers): ``steps``
    AdamW steps at lr 1e-3 with weight decay ``wd``, a short warm-up, EMA 0.99, on the CPU, silent."""
    return TrainConfig(
        max_steps=int(steps),
        batch_size=batch_size,
        lr=1e-3,
        weight_decay=wd,
        warmup_steps=min(20, max(1, int(steps) // 10)),
        ema_decay=0.99,
        val_every=max(1, min(50, int(steps))),
        checkpoint_every=100000,
        log_every=10**6,
        seed=seed,
        device="cpu",
        progress=False,
    )


def fit_clip(
    run_dir: str | os.PathLike, out: Path, sigs: dict, vecs: dict, *, seed: int, steps: int, train_batch: int
) -> ClipFeaturizer:
    """The ECG-text CLIP whose ECG features the set metrics use: trained on the real TRAINING split
    (``sigs["train"]`` (N, 12, L) mV with report vectors ``vecs["train"]`` (N, D)), best on validation
    (``sigs["val"]``, ``vecs["val"]``), written to ``out/clip`` (replacing an earlier one)."""
    shutil.rmtree(out / "clip", ignore_errors=True)
    train_clip(
        sigs["train"],
        vecs["train"],
        out / "clip",
        train_cfg=judge_train_config(steps, seed, min(train_batch, len(sigs["train"]))),
        val=(sigs["val"], vecs["val"]),
        meta={"run_dir": str(run_dir), "seed": seed},
    )
    return ClipFeaturizer.from_checkpoint(out / "clip" / "best.pt")


def fit_classifier(
    run_dir: str | os.PathLike,
    out: Path,
    sigs: dict,
    labs: dict,
    classes: list[str],
    *,
    seed: int,
    steps: int,
    train_batch: int,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """The multi-label classifier that reads generated ECGs: trained on the real TRAINING split (``sigs["train"]``
    (N, 12, L) mV, labels ``labs["train"]`` (N, len(classes))), thresholds chosen on the real validation ECGs,
    written to ``out/classifier``. Returns ``(model, thresholds, valid)``, ``thresholds`` (len(classes),) and
    ``valid`` (len(classes),) bool marking the classes the training split can teach (present and not universal)."""
    shutil.rmtree(out / "classifier", ignore_errors=True)
    model, _ = train_classifier(
        sigs["train"],
        labs["train"],
        sigs["val"],
        labs["val"],
        out / "classifier",
        train_cfg=judge_train_config(steps, seed, min(train_batch, len(sigs["train"])), wd=3e-4),
        pos_weight="balanced",
        classes=classes,
        meta={"run_dir": str(run_dir), "seed": seed},
    )
    thresholds = choose_thresholds(labs["val"], predict_proba(model, sigs["val"]))
    valid = (labs["train"].sum(0) > 0) & (labs["train"].sum(0) < len(labs["train"]))
    return model, thresholds, valid
