"""Feature level of the benchmark: what a cardiologist measures on each generated ECG, against what was asked.

Heart rate is compared with the requested HR (all records, and requested HR in 50-150 bpm); QRS, PR and QTc with
the same measurements on the reference (real test) ECG of the condition; overall and per condition class. The
rhythm rows give the beat-to-beat variability of the ECGs requested in sinus rhythm and in atrial fibrillation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .features import hr_error, interval_error, measure_features

__all__ = [
    "INTERVALS",
    "HR_TOLERANCE_BPM",
    "INTERVAL_TOLERANCE_MS",
    "feature_rows",
    "feature_tables",
    "rhythm_rows",
    "rhythm_table",
]

#: interval metric name -> column of :func:`.features.measure_features`
INTERVALS = {"qrs_ms": "qrs_ms", "pr_ms": "pr_ms", "qtc_ms": "qtc_bazett_ms"}
HR_TOLERANCE_BPM = 5.0  # the ``frac_within_tol`` tolerance of the HR rows
INTERVAL_TOLERANCE_MS = 20.0  # ... and of the interval rows

_ERROR_COLUMNS = ("n", "n_valid", "frac_valid", "mae", "bias", "rmse", "median_ae")


def feature_rows(
    source: str,
    meas: pd.DataFrame,
    ref: pd.DataFrame | None,
    req_hr: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
) -> list[dict]:
    """Error rows of one set: for ``all`` records and for each class present in ``labels`` (N, len(classes)),
    the HR error of ``meas`` (:func:`.features.measure_features` of the N ECGs) against ``req_hr`` (N,) bpm
    (metrics ``hr`` and ``hr_50_150``) and, when ``ref`` (the measurements of the N reference ECGs) is given,
    the QRS / PR / QTc errors (ms). Each row: source, class, metric, unit, the error statistics of
    :func:`.features.hr_error` / :func:`.features.interval_error`, ``frac_within_tol`` and ``tol``."""
    rows = []
    groups = [("all", np.ones(len(meas), bool))] + [(c, labels[:, j] == 1) for j, c in enumerate(classes)]
    hr = meas["hr_nk"].to_numpy(float)
    for cls, m in groups:
        if not m.any():
            continue
        in_range = m & (req_hr >= 50) & (req_hr <= 150)
        for metric, res in (
            ("hr", hr_error(hr[m], req_hr[m])),
            ("hr_50_150", hr_error(hr[in_range], req_hr[in_range])),
        ):
            rows.append(
                {
                    "source": source,
                    "class": cls,
                    "metric": metric,
                    "unit": "bpm",
                    **{k: res[k] for k in _ERROR_COLUMNS},
                    "frac_within_tol": res["frac_within_5"],
                    "tol": HR_TOLERANCE_BPM,
                }
            )
        if ref is None:
            continue
        for metric, col in INTERVALS.items():
            res = interval_error(meas[col].to_numpy(float)[m], ref[col].to_numpy(float)[m])
            rows.append(
                {
                    "source": source,
                    "class": cls,
                    "metric": metric,
                    "unit": "ms",
                    **{k: res[k] for k in _ERROR_COLUMNS},
                    "frac_within_tol": res["frac_within_20ms"],
                    "tol": INTERVAL_TOLERANCE_MS,
                }
            )
    return rows


def feature_tables(
    sets: dict[str, np.ndarray], conditions, *, fs: float, workers: int = 0, n_subset: int = 0
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Measure every set and build the feature-level tables.

    ``sets``: source -> (N_source, 12, L) mV, with ``real`` first (the reference ECGs) and row i generated for
    condition i of ``conditions`` (an :class:`.conditions.EvaluatedConditions`); the ``ddpm`` set covers the
    first ``n_subset`` conditions, which are also measured as ``model_subset`` (the fast sampler on the same
    conditions) when ``n_subset`` > 0. ``workers`` > 1 measures in a process pool.

    Returns ``(measurements, features, hr_pairs)``: the per-source measurement frames, the error rows of
    :func:`feature_rows`, and one row per ECG with its requested and measured HR.
    """
    req_hr, labels = conditions.requested_hr, conditions.labels
    record_ids = conditions.records["record_id"].to_numpy()
    meas = {src: measure_features(x, fs=fs, workers=workers) for src, x in sets.items()}
    rows, hr_pairs = [], []
    for src, m in meas.items():
        r = slice(0, n_subset if src == "ddpm" else len(conditions.records))
        ref = None if src == "real" else meas["real"].iloc[r].reset_index(drop=True)
        rows += feature_rows(src, m, ref, req_hr[r], labels[r], conditions.classes)
        hr_pairs.append(
            pd.DataFrame(
                {
                    "source": src,
                    "record_id": record_ids[r],
                    "requested_hr": req_hr[r],
                    "measured_hr": m["hr_nk"].to_numpy(float),
                }
            )
        )
    if n_subset > 0:
        m = meas["model"].iloc[:n_subset].reset_index(drop=True)
        rows += feature_rows(
            "model_subset",
            m,
            meas["real"].iloc[:n_subset].reset_index(drop=True),
            req_hr[:n_subset],
            labels[:n_subset],
            conditions.classes,
        )
    return meas, pd.DataFrame(rows), pd.concat(hr_pairs, ignore_index=True)


def rhythm_rows(source: str, meas: pd.DataFrame, labels: np.ndarray, classes: list[str]) -> list[dict]:
    """Median RR coefficient of variation (``rr_std_ms / rr_ms`` of the measured beats) of the records asked
    for sinus rhythm (no atrial fibrillation, no premature complexes) and of those asked for atrial
    fibrillation."""
    cv = (meas["rr_std_ms"] / meas["rr_ms"]).to_numpy(float)
    af = labels[:, classes.index("atrial_fibrillation")] == 1
    sinus = ~af & (labels[:, classes.index("pvc")] == 0)
    rows = []
    for rhythm, m in (("sinus", sinus), ("atrial_fibrillation", af)):
        v = cv[m][np.isfinite(cv[m])]
        rows.append(
            {
                "source": source,
                "rhythm": rhythm,
                "n": int(m.sum()),
                "n_valid": int(len(v)),
                "rr_cv_median": float(np.median(v)) if len(v) else math.nan,
            }
        )
    return rows


def rhythm_table(meas: dict[str, pd.DataFrame], conditions) -> pd.DataFrame:
    """:func:`rhythm_rows` of every measured set (``meas``: source -> measurements, row i for condition i of
    ``conditions``); the real-ECG sets (:data:`.conditions.REAL_SOURCES`) count each real ECG once."""
    rows = []
    for src, m in meas.items():
        if conditions.is_real(src):
            m, y = m[conditions.first[: len(m)]].reset_index(drop=True), conditions.labels[conditions.first]
        else:
            y = conditions.labels[: len(m)]
        rows += rhythm_rows(src, m, y, conditions.classes)
    return pd.DataFrame(rows)
