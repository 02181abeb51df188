"""Diagnostic level of the benchmark: does a classifier trained on real ECGs find the class each ECG was
generated for?

The multi-label classifier of :func:`.fit_judges.fit_classifier` (thresholds chosen on the real validation ECGs)
reads every set: recall of each requested class with a 95 % Wilson interval, macro recall over all trained
classes and over the morphology classes, a confusion matrix of the single-class conditions, the same reading of
statement combinations the training set never pairs, and TSTR vs TRTR (train on generated vs real ECGs, test on
real).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from .classifiers import predict_proba, tstr_trtr
from .conditions import EvaluatedConditions
from .fit_judges import judge_train_config
from .splits import EvalSplits
from .taxonomy import MORPHOLOGY_CLASSES

__all__ = [
    "wilson_interval",
    "diagnostic_rows",
    "diagnostic_summary_row",
    "confusion_table",
    "diagnostic_tables",
    "TSTR_COLUMNS",
    "tstr_table",
]

#: ``generate(frame, sampler, steps, first_seed)`` -> (len(frame), 12, L) mV: ECGs for the conditions (report,
#: age, sex, hr) of ``frame``, row i with seed ``first_seed + i`` (see :class:`.sets.SetGenerator`).
Generate = Callable[[pd.DataFrame, str, int, int], np.ndarray]

TSTR_COLUMNS = ["setting", "macro_auroc", "n_train", "n_test"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (scipy's ``binomtest(...).proportion_ci``; Wilson 1927,
    recommended for small n by Brown, Cai & DasGupta 2001). ``(nan, nan)`` for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def diagnostic_rows(
    source: str, proba: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, classes: list[str], valid: np.ndarray
) -> list[dict]:
    """Per class: the share of the ECGs requested with it (``labels`` (N, C) == 1) whose probability ``proba``
    (N, C) reaches the class threshold ``thresholds`` (C,), with its Wilson interval, support, whether the class is a
    morphology class and trained (``valid`` (C,) bool), and how often the class is predicted at all."""
    pred = proba >= thresholds[None, :]
    rows = []
    for j, c in enumerate(classes):
        m = labels[:, j] == 1
        k, n = int(pred[m, j].sum()), int(m.sum())
        lo, hi = wilson_interval(k, n)
        rows.append(
            {
                "source": source,
                "class": c,
                "morphology": c in MORPHOLOGY_CLASSES,
                "support": n,
                "trained": bool(valid[j]),
                "recall": k / n if n else math.nan,
                "recall_lo": lo,
                "recall_hi": hi,
                "predicted_rate": float(pred[:, j].mean()) if len(pred) else math.nan,
            }
        )
    return rows


def diagnostic_summary_row(source: str, rows: list[dict], n: int) -> dict:
    """Macro recall over every trained class and over the morphology classes (:data:`MORPHOLOGY_CLASSES`)."""
    rec = [d["recall"] for d in rows if d["trained"] and np.isfinite(d["recall"])]
    morph = [d["recall"] for d in rows if d["trained"] and d["morphology"] and np.isfinite(d["recall"])]
    return {
        "source": source,
        "n": n,
        "macro_recall": float(np.mean(rec)) if rec else math.nan,
        "macro_recall_morphology": float(np.mean(morph)) if morph else math.nan,
        "n_classes": len(rec),
        "n_morphology_classes": len(morph),
    }


def confusion_table(
    source: str, proba: np.ndarray, labels: np.ndarray, classes: list[str], valid: np.ndarray
) -> pd.DataFrame:
    """Requested vs the classifier's top class (among the trained classes) of the ECGs whose condition has
    exactly one class, a trained one: long format (source, requested, predicted, count)."""
    cols = np.flatnonzero(valid)
    single = (labels.sum(axis=1) == 1) & (labels[:, cols].sum(axis=1) == 1)
    rows = []
    if single.any():
        t = np.argmax(labels[single][:, cols], axis=1)
        p = np.argmax(proba[single][:, cols], axis=1)
        cm = np.zeros((len(cols), len(cols)), dtype=np.int64)
        np.add.at(cm, (t, p), 1)
        for a in range(len(cols)):
            for b in range(len(cols)):
                rows.append(
                    {
                        "source": source,
                        "requested": classes[cols[a]],
                        "predicted": classes[cols[b]],
                        "count": int(cm[a, b]),
                    }
                )
    return pd.DataFrame(rows, columns=["source", "requested", "predicted", "count"])


def diagnostic_tables(
    sets: dict[str, np.ndarray],
    conditions: EvaluatedConditions,
    model: Any,
    thresholds: np.ndarray,
    valid: np.ndarray,
    *,
    n_subset: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The classifier ``model`` (thresholds ``thresholds``, trained classes ``valid``) reads every set (row i generated for
    condition i; the real-ECG sets count each real ECG once) and, when ``n_subset`` > 0, the model's first
    ``n_subset`` ECGs as ``model_subset``. Returns the ``diagnostic``, ``diagnostic_summary`` and ``confusion``
    tables."""
    classes = conditions.classes
    reads = list(sets.items()) + ([("model_subset", sets["model"][:n_subset])] if n_subset else [])
    rows, confusion, summary = [], [], []
    for src, x in reads:
        y = conditions.labels[: len(x)]
        if conditions.is_real(src):  # one row per real ECG: a repeated condition is not a new real sample
            x, y = x[conditions.first], conditions.labels[conditions.first]
        proba = predict_proba(model, x)
        source_rows = diagnostic_rows(src, proba, thresholds, y, classes, valid)
        rows += source_rows
        confusion.append(confusion_table(src, proba, y, classes, valid))
        summary.append(diagnostic_summary_row(src, source_rows, len(x)))
    return pd.DataFrame(rows), pd.DataFrame(summary), pd.concat(confusion, ignore_index=True)


def tstr_table(
    generate: Generate,
    data: EvalSplits,
    valid: np.ndarray,
    *,
    n_tstr: int | None,
    seed: int,
    sampler: str,
    steps: int,
    clf_steps: int,
    train_batch: int,
    out: Path,
) -> tuple[pd.DataFrame, int]:
    """TSTR vs TRTR: ECGs generated for ``n_tstr`` training conditions (seeded subset; None = all; seeds from
    ``seed + 10**6``) train a classifier of the trained classes (``valid``), as their real ECGs train another;
    both are tested on the real test split (:func:`.classifiers.tstr_trtr`, written under ``out/tstr``).
    Returns the table (rows ``trtr``, ``tstr``, ``tstr_over_trtr``; columns :data:`TSTR_COLUMNS`) and the number
    of training conditions."""
    tr = data.records["train"]
    k = len(tr) if n_tstr is None else min(int(n_tstr), len(tr))
    tsel = np.sort(np.random.default_rng(seed + 1).permutation(len(tr))[:k])
    x_syn = generate(tr.iloc[tsel], sampler, steps, seed + 10**6)
    cols = np.flatnonzero(valid)
    sigs, labs = data.signals, data.labels
    res = tstr_trtr(
        (sigs["train"][tsel], labs["train"][tsel][:, cols]),
        (x_syn, labs["train"][tsel][:, cols]),
        (sigs["val"], labs["val"][:, cols]),
        (sigs["test"], labs["test"][:, cols]),
        out / "tstr",
        train_cfg=judge_train_config(clf_steps, seed, min(train_batch, k), wd=3e-4),
        pos_weight="balanced",
        classes=[data.classes[c] for c in cols],
    )
    rows = [
        {
            "setting": tag,
            "macro_auroc": res[f"{tag}_macro_auroc"],
            "n_train": res[f"n_train_{tag}"],
            "n_test": res["n_test"],
        }
        for tag in ("trtr", "tstr")
    ]
    rows.append(
        {"setting": "tstr_over_trtr", "macro_auroc": res["tstr_over_trtr"], "n_train": k, "n_test": res["n_test"]}
    )
    return pd.DataFrame(rows, columns=TSTR_COLUMNS), k
