"""Does a twin apply the new report, or copy its reference? The benchmark's judge reads the generated ECGs.

The judge is the run's multi-label classifier (trained on the run's real training ECGs by the benchmark,
``eval/classifier``), with thresholds chosen again on the run's real validation ECGs, as the benchmark chooses them
(:func:`~.classifiers.choose_thresholds`). For each set of generated ECGs (the twin with its reference, the twin
without it, the reference-free model) and the same requests:

* **condition following**: per requested class, the share of ECGs read as showing it, and the macro recall over
  morphology classes (:data:`~.taxonomy.MORPHOLOGY_CLASSES`) -- the benchmark's measure
  (:func:`~.request_level.request_tables`);
* **new findings**: the share of the (request, class) cells asked for that the reference ECG does not show (what
  the new report adds) which the judge reads in the generated ECG -- a pooled recall over cells, not a macro mean
  over classes: a twin that copies its reference fails here first;
* **carried over**: for the classes the reference shows and the new report does not ask for, the share of ECGs read
  as showing them anyway -- copying the reference's findings. The reference-free model's share on the same
  requests is the rate at which those classes appear without any reference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import SignalStore
from .classifiers import choose_thresholds, labels_for_reports, load_classifier, predict_proba
from .diagnostic_level import wilson_interval
from .request_level import RequestRead, request_tables
from .taxonomy import EVAL_CLASSES, MORPHOLOGY_CLASSES

__all__ = ["TwinJudge", "load_twin_judge", "following_tables", "FOLLOWING_COLUMNS"]

FOLLOWING_COLUMNS = [
    "model",
    "n",
    "macro_recall_morphology",
    "macro_recall",
    "new_findings_recall",
    "new_findings_n",
    "carried_over",
    "carried_over_lo",
    "carried_over_hi",
    "carried_over_n",
    "target_macro_recall_morphology",
]


@dataclass
class TwinJudge:
    """The run's classifier with its thresholds: ``proba(x (N, 12, L)) -> (N, C)``; ``valid`` marks the classes the
    training split can teach."""

    model: object
    thresholds: np.ndarray
    valid: np.ndarray
    classes: list[str]

    def proba(self, x: np.ndarray) -> np.ndarray:
        return predict_proba(self.model, x)

    def labels(self, reports: list[str], findings: list[str] | None = None) -> np.ndarray:
        """(N, C) classes of reports (and their structured findings, when known)."""
        labels, names = labels_for_reports(reports, findings)
        if names != self.classes:
            raise ValueError(f"the judge reads classes {self.classes}, the labels are {names}")
        return labels


def load_twin_judge(run_dir: str | os.PathLike) -> TwinJudge:
    """The benchmark's classifier of ``run_dir`` (``eval/classifier``, written by the benchmark chapter /
    ``diffusets evaluate``) with thresholds chosen on the run's validation ECGs.

    Raises:
        FileNotFoundError: the run has no trained classifier (the benchmark has not run), naming the folder.
    """
    path = Path(run_dir) / "eval" / "classifier"
    if not (path / "best.pt").is_file():
        raise FileNotFoundError(f"{path}: no benchmark classifier; run the benchmark (chapter 6) on {run_dir} first")
    model = load_classifier(path)
    store = SignalStore(run_dir)
    val, train = store.records("val"), store.records("train")
    y_val, classes = labels_for_reports(val["report"].tolist(), val["findings"].tolist(), EVAL_CLASSES)
    y_train = labels_for_reports(train["report"].tolist(), train["findings"].tolist(), EVAL_CLASSES)[0]
    thresholds = choose_thresholds(y_val, predict_proba(model, np.asarray(store.signals("val"), np.float32)))
    valid = (y_train.sum(0) > 0) & (y_train.sum(0) < len(y_train))
    return TwinJudge(model, thresholds, valid, classes)


def _recall_over(pred: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Share of the ``mask`` cells that ``pred`` marks, and how many cells there are."""
    n = int(mask.sum())
    return (float(pred[mask].mean()) if n else math.nan), n


def following_tables(
    judge: TwinJudge,
    sets: Mapping[str, np.ndarray],
    target_labels: np.ndarray,
    reference_labels: np.ndarray,
    targets: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_class, summary)`` for generated ``sets`` (name -> (N, 12, L), one ECG per request).

    ``target_labels`` (N, C): the classes each request asks for (the target record's report); ``reference_labels``
    (N, C): the classes of each request's reference ECG; ``targets`` (N, 12, L): the real target ECGs (the judge's
    recall on them is the yardstick's ceiling). ``per_class`` is :func:`~.request_level.request_tables`' table with
    ``kind`` = the set's name; ``summary`` has :data:`FOLLOWING_COLUMNS` (module docstring)."""
    morph = np.array([c in MORPHOLOGY_CLASSES for c in judge.classes])
    valid = judge.valid
    target_p = judge.proba(targets)
    probas = {name: judge.proba(x) for name, x in sets.items()}
    reads = {name: RequestRead(p, target_labels, target_p, target_labels) for name, p in probas.items()}
    per_class, summary = request_tables(reads, judge.thresholds, valid, judge.classes)
    new = (target_labels == 1) & (reference_labels == 0) & (valid & morph)[None, :]
    carried = (reference_labels == 1) & (target_labels == 0) & (valid & morph)[None, :]
    rows = []
    for name, p in probas.items():
        pred = p >= judge.thresholds[None, :]
        new_recall, new_n = _recall_over(pred, new)
        carried_share, carried_n = _recall_over(pred, carried)
        lo, hi = wilson_interval(int(pred[carried].sum()), carried_n) if carried_n else (math.nan, math.nan)
        s = summary[summary["kind"] == name].iloc[0]
        rows.append(
            {
                "model": name,
                "n": len(p),
                "macro_recall_morphology": s["macro_recall_morphology"],
                "macro_recall": s["macro_recall"],
                "new_findings_recall": new_recall,
                "new_findings_n": new_n,
                "carried_over": carried_share,
                "carried_over_lo": lo,
                "carried_over_hi": hi,
                "carried_over_n": carried_n,
                "target_macro_recall_morphology": s["reference_macro_recall_morphology"],
            }
        )
    return per_class.rename(columns={"kind": "model"}), pd.DataFrame(rows, columns=FOLLOWING_COLUMNS)
