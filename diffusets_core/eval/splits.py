"""The real data every evaluation reads: a run's splits with their signals, report embeddings and class labels,
loaded once (:func:`load_eval_splits`) by the benchmark (:func:`.report.evaluate_run`), the guidance sweep
(:func:`.guidance.guidance_sweep`) and the reusable judge (:class:`.judge.BenchmarkJudge`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import SignalStore
from ..text.embed import load_run_embeddings
from .classifiers import labels_for_reports
from .taxonomy import EVAL_CLASSES

__all__ = ["EvalSplits", "load_eval_splits"]


@dataclass
class EvalSplits:
    """One run's evaluation data, per split name (``train`` / ``val`` / ``test``)."""

    store: SignalStore
    records: dict[str, pd.DataFrame]  # the split's ok manifest rows (record_id, report, age, sex, hr, ...)
    signals: dict[str, np.ndarray]  # (N, 12, L) float32 mV, row i for records row i
    vectors: dict[str, np.ndarray]  # (N, D) float32 report embeddings, row i for records row i
    labels: dict[str, np.ndarray]  # (N, len(classes)) multi-hot float32 labels of the reports
    classes: list[str]  # the label columns: the names of :data:`.taxonomy.EVAL_CLASSES`

    @property
    def fs(self) -> float:
        """Sampling rate of the signals (Hz)."""
        return self.store.fs


def load_eval_splits(
    run_dir: str | os.PathLike, splits: Sequence[str] = ("train", "val", "test"), *, min_records: int = 0
) -> EvalSplits:
    """Records, signals, report vectors (rows matched by ``record_id``) and :data:`~.taxonomy.EVAL_CLASSES`
    labels of each of ``splits`` of the run.

    Raises ValueError when a split has fewer than ``min_records`` records (checked before any signal is read),
    FileNotFoundError when the run has no embeddings, KeyError when a record has no embedding.
    """
    run_dir = Path(run_dir)
    store = SignalStore(run_dir)
    ids, vectors, _ = load_run_embeddings(run_dir)
    pos = {r: i for i, r in enumerate(ids)}
    records = {s: store.records(s) for s in splits}
    if any(len(records[s]) < min_records for s in records):
        raise ValueError(
            f"{run_dir}: need at least {min_records} records in each of {'/'.join(splits)}, got "
            f"{ {s: len(v) for s, v in records.items()} }"
        )
    signals = {s: np.asarray(store.signals(s), dtype=np.float32) for s in records}
    vecs = {s: vectors[[pos[r] for r in records[s]["record_id"].astype(str)]].astype(np.float32) for s in records}
    labels = {
        s: labels_for_reports(records[s]["report"].tolist(), records[s]["findings"].tolist(), EVAL_CLASSES)[0]
        for s in records
    }
    return EvalSplits(store, records, signals, vecs, labels, list(EVAL_CLASSES))
