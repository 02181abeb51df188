"""The four kinds of request (:mod:`.requests`) read side by side by the benchmark's multi-label classifier:
per kind and class, the share of generated ECGs showing the requested class (Wilson interval), beside the judge's
own recall on the reference ECGs of the same requests (the yardstick's ceiling) and on their reconstructions
through the run's autoencoder (the ceiling of any generator on it); per kind, macro recall, HR error and the share
of ECGs showing **every** requested class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .diagnostic_level import diagnostic_rows
from .requests import REQUEST_LABELS
from .taxonomy import MORPHOLOGY_CLASSES

__all__ = [
    "RequestRead",
    "all_requested",
    "request_tables",
    "request_reads",
    "combination_table",
    "hr_mae_50_150",
    "REQUEST_COLUMNS",
    "REQUEST_SUMMARY_COLUMNS",
]

REQUEST_COLUMNS = [
    "kind",
    "class",
    "morphology",
    "support",
    "recall",
    "recall_lo",
    "recall_hi",
    "reference_recall",
    "vae_recall",
]
REQUEST_SUMMARY_COLUMNS = [
    "kind",
    "request",
    "n",
    "macro_recall_morphology",
    "macro_recall",
    "all_requested",
    "all_requested_lo",
    "all_requested_hi",
    "hr_mae_50_150",
    "reference_macro_recall_morphology",
    "reference_all_requested",
    "vae_macro_recall_morphology",
    "share_reworded",
]


@dataclass
class RequestRead:
    """One kind of request as the classifier read it: probabilities of the generated ECGs ``proba`` (N, C), of
    their reference ECGs ``reference`` (R, C; R = N, or the distinct references) and of the references'
    reconstructions ``vae`` (R, C, or None); ``labels`` (N, C) the requested classes and ``reference_labels``
    (R, C); ``hr_mae`` the HR error (bpm, requested 50-150) of the generated ECGs; ``share_reworded`` the share of
    statements whose wording differs from the record's (NaN: not applicable)."""

    proba: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    reference_labels: np.ndarray
    vae: np.ndarray | None = None
    hr_mae: float = math.nan
    share_reworded: float = math.nan


def all_requested(proba: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N,) bool: every requested class (``labels`` == 1) that the classifier was trained on (``valid``) reaches its
    threshold. A request with no such class counts as False (nothing to show)."""
    pred = proba >= thresholds[None, :]
    req = (labels == 1) & valid[None, :]
    return req.any(axis=1) & ~(req & ~pred).any(axis=1)


def _macro(rows: list[dict], morphology: bool) -> float:
    vals = [r["recall"] for r in rows if r["trained"] and r["support"] and (r["morphology"] or not morphology)]
    return float(np.mean(vals)) if vals else math.nan


def request_tables(
    reads: Mapping[str, RequestRead], thresholds: np.ndarray, valid: np.ndarray, classes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(requests, requests_summary)``: per kind and requested, trained class (rows with support > 0) the recall of
    the generated ECGs with its 95 % Wilson interval, the reference and VAE recall; per kind the morphology and
    all-class macro recall over those classes, the share showing every requested class (Wilson interval), the HR
    MAE and the ceilings. Kinds appear in the order of ``reads``."""
    from .diagnostic_level import wilson_interval

    rows, summary = [], []
    for kind, r in reads.items():
        gen = diagnostic_rows(kind, r.proba, thresholds, r.labels, classes, valid)
        ref = diagnostic_rows(kind, r.reference, thresholds, r.reference_labels, classes, valid)
        vae = (
            diagnostic_rows(kind, r.vae, thresholds, r.reference_labels, classes, valid) if r.vae is not None else None
        )
        for j, g in enumerate(gen):
            if not (g["trained"] and g["support"]):
                continue
            rows.append(
                {
                    "kind": kind,
                    "class": g["class"],
                    "morphology": g["class"] in MORPHOLOGY_CLASSES,
                    "support": g["support"],
                    "recall": g["recall"],
                    "recall_lo": g["recall_lo"],
                    "recall_hi": g["recall_hi"],
                    "reference_recall": ref[j]["recall"],
                    "vae_recall": vae[j]["recall"] if vae is not None else math.nan,
                }
            )
        every = all_requested(r.proba, thresholds, r.labels, valid)
        lo, hi = wilson_interval(int(every.sum()), len(every))
        summary.append(
            {
                "kind": kind,
                "request": REQUEST_LABELS.get(kind, kind),
                "n": len(r.proba),
                "macro_recall_morphology": _macro(gen, True),
                "macro_recall": _macro(gen, False),
                "all_requested": float(every.mean()) if len(every) else math.nan,
                "all_requested_lo": lo,
                "all_requested_hi": hi,
                "hr_mae_50_150": r.hr_mae,
                "reference_macro_recall_morphology": _macro(ref, True),
                "reference_all_requested": float(
                    all_requested(r.reference, thresholds, r.reference_labels, valid).mean()
                ),
                "vae_macro_recall_morphology": _macro(vae, True) if vae is not None else math.nan,
                "share_reworded": r.share_reworded,
            }
        )
    return pd.DataFrame(rows, columns=REQUEST_COLUMNS), pd.DataFrame(summary, columns=REQUEST_SUMMARY_COLUMNS)


def hr_mae_50_150(measured: np.ndarray, requested: np.ndarray) -> float:
    """HR MAE (bpm) over requests of 50-150 bpm with a measured HR (:func:`.features.hr_error`)."""
    from .features import hr_error

    m = (requested >= 50) & (requested <= 150)
    return float(hr_error(measured[m], requested[m])["mae"]) if m.any() else math.nan


def request_reads(
    sets: Mapping[str, np.ndarray],
    conditions: Any,
    features: pd.DataFrame,
    proba: Any,
    *,
    combinations: Any = None,
    combination_x: np.ndarray | None = None,
    combination_vae: np.ndarray | None = None,
    combination_hr: np.ndarray | None = None,
    shares: Mapping[str, float] | None = None,
) -> dict[str, RequestRead]:
    """The :class:`RequestRead` of each kind the benchmark generated: ``seen`` (set ``model``), ``reworded`` and
    ``paraphrased`` (when in ``sets``) for the evaluated test ``conditions`` (an
    :class:`~.conditions.EvaluatedConditions`; their reference ECGs are ``sets["real"]`` / ``sets["vae"]``, each
    counted once), and ``combinations`` (a :class:`~.requests.CombinationSet`, its generated ECGs
    ``combination_x``, their reconstructions ``combination_vae`` and measured HR ``combination_hr`` (bpm)).
    ``proba(x)`` -> (N, C) is the classifier; ``features`` the feature table (HR MAE of the test-condition sets);
    ``shares`` the share of statements reworded per kind."""
    from .classifiers import labels_for_reports
    from .targets import table_value

    shares = dict(shares or {})
    once = conditions.first
    ref_p = proba(sets["real"][once])
    vae_p = proba(sets["vae"][once]) if "vae" in sets else None
    ref_labels = conditions.labels[once]
    out: dict[str, RequestRead] = {}
    for kind, source in (("seen", "model"), ("reworded", "reworded"), ("paraphrased", "paraphrased")):
        if source not in sets:
            continue
        out[kind] = RequestRead(
            proba(sets[source]),
            conditions.labels,
            ref_p,
            ref_labels,
            vae_p,
            hr_mae=table_value(features, source, "mae", **{"class": "all", "metric": "hr_50_150"}),
            share_reworded=shares.get(kind, 0.0 if kind == "seen" else math.nan),
        )
    if combinations is not None and combination_x is not None:
        c = combinations.conditions
        labels = labels_for_reports(c["report"].tolist(), c["findings"].tolist())[0]
        out["combinations"] = RequestRead(
            proba(combination_x),
            labels,
            proba(combinations.signals),
            labels,
            proba(combination_vae) if combination_vae is not None else None,
            hr_mae=hr_mae_50_150(np.asarray(combination_hr, float), c["hr"].to_numpy(float))
            if combination_hr is not None
            else math.nan,
            share_reworded=0.0,
        )
    # the table order of the kinds
    order = ("seen", "reworded", "combinations", "paraphrased")
    return {k: out[k] for k in order if k in out}


def combination_table(
    combinations: Any, read: RequestRead, thresholds: np.ndarray, valid: np.ndarray, classes: list[str]
) -> pd.DataFrame:
    """Per held-out combination: requests, how many of the records attempted the interpreter read as the whole
    combination (``references_built``; only those are requested), the recall of each requested class and the share showing every requested class,
    generated and on the references (the judge's ceiling)."""
    c, built = combinations.conditions, combinations.built.set_index("combination")
    pred = read.proba >= thresholds[None, :]
    every = all_requested(read.proba, thresholds, read.labels, valid)
    every_ref = all_requested(read.reference, thresholds, read.reference_labels, valid)
    rows = []
    groups = c.groupby("combination", sort=False).indices
    for combo in built.index:
        idx = groups.get(combo, np.zeros(0, dtype=np.int64))
        if not len(idx):
            rows.append(
                {
                    "combination": combo.replace("+", " + "),
                    "n": 0,
                    "references_built": f"0 of {int(built.loc[combo, 'attempted'])}",
                    "requested_classes": "not requested: the cohort's rules never draw it",
                }
            )
            continue
        fids = combo.split("+")
        req = sorted({j for j, name in enumerate(classes) if valid[j] and read.labels[idx][:, j].all()})
        req = [j for j in req if any(f in _class_findings(classes[j]) for f in fids)]
        rows.append(
            {
                "combination": combo.replace("+", " + "),
                "n": len(idx),
                "references_built": f"{int(built.loc[combo, 'kept'])} of {int(built.loc[combo, 'attempted'])}",
                "requested_classes": "|".join(classes[j] for j in req),
                "recall_each": "; ".join(f"{classes[j]} {pred[idx, j].mean():.2f}" for j in req),
                "all_requested": float(every[idx].mean()),
                "reference_all_requested": float(every_ref[idx].mean()),
            }
        )
    return pd.DataFrame(rows)


def _class_findings(cls: str) -> tuple[str, ...]:
    from .taxonomy import EVAL_CLASSES

    spec = EVAL_CLASSES.get(cls, {})
    return tuple(spec.get("findings", ())) if isinstance(spec, Mapping) else ()
