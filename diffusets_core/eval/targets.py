"""The benchmark's targets: what the generator should reach, and the met / missed table computed from the
benchmark's tables (:func:`targets_table`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .reconstruction import AMPLITUDE_LIMIT_MV
from .taxonomy import KEY_CLASSES

__all__ = ["TARGETS", "PARAPHRASE_TARGETS", "targets_table", "table_value", "target_values"]

# The benchmark's targets: key -> (description, threshold, direction). "x real" thresholds are relative to the
# real test ECGs' own value in the same table.
TARGETS = {
    "hr_mae_50_150": ("HR MAE (requested HR 50-150 bpm)", 5.0, "<="),
    "macro_recall_morphology": ("classifier recall of the requested class, macro over morphology classes", 0.8, ">="),
    **{f"recall_{c}": (f"classifier recall of {c}", 0.6, ">=") for c in KEY_CLASSES},
    "macro_recall_vs_real": ("all-class macro recall / the real ECGs' own", 0.85, ">="),
    "rfid": ("rFID", 2.0, "<="),
    "precision": ("precision (k=3)", 0.7, ">="),
    "recall": ("recall (k=3)", 0.7, ">="),
    "identity_uv": ("frontal-lead identity error, median (µV RMS)", 5.0, "<="),
    "beyond_10mv": (f"share of records beyond ±{AMPLITUDE_LIMIT_MV:g} mV", 0.0, "<="),
    "sinus_rr_cv_vs_real": ("sinus rhythm: median RR CV / the real sinus records'", 2.0, "<="),
    "af_rr_cv_vs_sinus": ("atrial fibrillation: median RR CV / generated sinus rhythm's", 3.0, ">="),
}

# The targets of the paraphrase evaluation (rows of the table only when the tables have a ``paraphrased`` source),
# in the same form: key -> (description, threshold, direction).
PARAPHRASE_TARGETS = {
    "paraphrase_hr_mae_50_150": ("paraphrased reports: HR MAE (requested 50-150 bpm)", 5.0, "<="),
    "paraphrase_morphology_gap": ("morphology macro recall: in-distribution minus paraphrased", 0.1, "<="),
}


def _meets(v: float, threshold: float, direction: str) -> bool:
    """``v direction threshold`` (``<=`` / ``>=``); False when ``v`` is missing."""
    return bool(np.isfinite(v) and (v <= threshold if direction == "<=" else v >= threshold))


def table_value(df: pd.DataFrame | None, source: str, column: str, **where) -> float:
    """``df[column]`` of the first row with ``source`` (and every ``where`` column equal to its value); NaN when
    ``df`` is None or empty, no row matches or the value is missing."""
    if df is None or not len(df):
        return math.nan
    d = df[df["source"] == source]
    for k, v in where.items():
        d = d[d[k] == v]
    return float(d[column].iloc[0]) if len(d) and pd.notna(d[column].iloc[0]) else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b != 0 else math.nan


def target_values(tables: dict[str, pd.DataFrame], source: str) -> dict[str, float]:
    """The value of every :data:`TARGETS` key for ``source`` (``model``, or ``vae`` for its ceiling), read from
    the benchmark's tables (``signal``, ``features``, ``diagnostic_summary``, ``diagnostic`` and, when present,
    ``physical`` and ``rhythm``); NaN where a table cannot tell."""
    sig, feat, summ, diag = tables["signal"], tables["features"], tables["diagnostic_summary"], tables["diagnostic"]
    phys, rhy = tables.get("physical"), tables.get("rhythm")
    sinus = table_value(rhy, source, "rr_cv_median", rhythm="sinus")
    return {
        "hr_mae_50_150": table_value(feat, source, "mae", **{"class": "all", "metric": "hr_50_150"}),
        "macro_recall_morphology": table_value(summ, source, "macro_recall_morphology"),
        **{f"recall_{c}": table_value(diag, source, "recall", **{"class": c}) for c in KEY_CLASSES},
        "macro_recall_vs_real": _ratio(
            table_value(summ, source, "macro_recall"), table_value(summ, "real", "macro_recall")
        ),
        "rfid": table_value(sig, source, "rfid"),
        "precision": table_value(sig, source, "precision"),
        "recall": table_value(sig, source, "recall"),
        "identity_uv": table_value(phys, source, "identity_uv_median"),
        "beyond_10mv": table_value(phys, source, "beyond_10mv"),
        "sinus_rr_cv_vs_real": _ratio(sinus, table_value(rhy, "real", "rr_cv_median", rhythm="sinus")),
        "af_rr_cv_vs_sinus": _ratio(table_value(rhy, source, "rr_cv_median", rhythm="atrial_fibrillation"), sinus),
    }


def targets_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The benchmark's targets (:data:`TARGETS`) as met / missed, computed from the tables (model row; the
    ``vae`` ceiling beside it where the tables have one, and the nearest-neighbour comparison rows)."""
    rows = []
    sig, feat, summ = tables["signal"], tables["features"], tables["diagnostic_summary"]
    model = target_values(tables, "model")
    ceiling = target_values(tables, "vae") if "vae" in set(sig["source"]) else {}
    for key, (desc, thr, op) in TARGETS.items():
        v = model[key]
        rows.append(
            {
                "target": key,
                "description": desc,
                "value": v,
                "vae_ceiling": ceiling.get(key, math.nan),
                "threshold": thr,
                "direction": op,
                "met": _meets(v, thr, op),
            }
        )
    if "paraphrased" in set(summ["source"]):
        para_hr = table_value(feat, "paraphrased", "mae", **{"class": "all", "metric": "hr_50_150"})
        gap = model["macro_recall_morphology"] - table_value(summ, "paraphrased", "macro_recall_morphology")
        values = {"paraphrase_hr_mae_50_150": para_hr, "paraphrase_morphology_gap": gap}
        for key, (desc, thr, op) in PARAPHRASE_TARGETS.items():
            v = values[key]
            rows.append(
                {
                    "target": key,
                    "description": desc,
                    "value": v,
                    "vae_ceiling": math.nan,
                    "threshold": thr,
                    "direction": op,
                    "met": _meets(v, thr, op),
                }
            )
    for key, df, col in (("beats_nn_macro_recall", summ, "macro_recall"), ("beats_nn_coverage", sig, "coverage")):
        m, nn = table_value(df, "model", col), table_value(df, "nn", col)
        rows.append(
            {
                "target": key,
                "description": f"model {col} > nearest-neighbour {col}",
                "value": m,
                "threshold": nn,
                "direction": ">",
                "met": bool(np.isfinite(m) and np.isfinite(nn) and m > nn),
            }
        )
    return pd.DataFrame(rows)
