"""The benchmark's targets: what the generator should reach, and the met / missed table computed from the
benchmark's tables (:func:`targets_table`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .reconstruction import AMPLITUDE_LIMIT_MV
from .taxonomy import KEY_CLASSES

__all__ = ["TARGETS", "REQUEST_TARGETS", "targets_table", "table_value", "target_values", "request_target_values"]

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

# The targets of the four kinds of request (rows of the table only when the tables have the ``requests`` tables,
# :mod:`.request_level`), in the same form: key -> (description, threshold, direction).
REQUEST_TARGETS = {
    "seen_min_recall_morphology": ("(a) lowest per-class recall, morphology classes", 0.6, ">="),
    "reworded_morphology_gap": ("morphology macro recall: (a) minus (b) held-out wordings", 0.05, "<="),
    "reworded_hr_mae_50_150": ("(b) held-out wordings: HR MAE (requested 50-150 bpm)", 5.0, "<="),
    "combinations_min_recall": ("(c) held-out combinations: lowest per-class recall", 0.6, ">="),
    "combinations_all_requested": ("(c) held-out combinations: share showing every requested class", 0.5, ">="),
    "paraphrase_morphology_gap": ("morphology macro recall: (a) minus (d) paraphrases.yaml", 0.1, "<="),
}


_REQUEST_KIND = {"seen": "seen", "reworded": "reworded", "combinations": "combinations", "paraphrase": "paraphrased"}


def request_target_values(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The value of every :data:`REQUEST_TARGETS` key from the ``requests`` and ``requests_summary`` tables (NaN for
    a kind the tables lack)."""
    req, summ = tables.get("requests"), tables.get("requests_summary")

    def kind(k: str, column: str) -> float:
        if summ is None or not len(summ) or k not in set(summ["kind"]):
            return math.nan
        v = summ.loc[summ["kind"] == k, column].iloc[0]
        return float(v) if pd.notna(v) else math.nan

    def lowest(k: str, morphology: bool) -> float:
        if req is None or not len(req):
            return math.nan
        t = req[(req["kind"] == k) & (req["morphology"] | (not morphology))]
        return float(t["recall"].min()) if len(t) else math.nan

    seen = kind("seen", "macro_recall_morphology")
    return {
        "seen_min_recall_morphology": lowest("seen", True),
        "reworded_morphology_gap": seen - kind("reworded", "macro_recall_morphology"),
        "reworded_hr_mae_50_150": kind("reworded", "hr_mae_50_150"),
        "combinations_min_recall": lowest("combinations", False),
        "combinations_all_requested": kind("combinations", "all_requested"),
        "paraphrase_morphology_gap": seen - kind("paraphrased", "macro_recall_morphology"),
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
    sig, summ = tables["signal"], tables["diagnostic_summary"]
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
    if tables.get("requests_summary") is not None and len(tables["requests_summary"]):
        values = request_target_values(tables)
        kinds = set(tables["requests_summary"]["kind"])
        for key, (desc, thr, op) in REQUEST_TARGETS.items():
            v = values[key]
            if _REQUEST_KIND[key.split("_")[0]] not in kinds:  # e.g. no held-out wordings for a real dataset
                continue
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
