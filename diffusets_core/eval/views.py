"""The benchmark's tables shaped for reading (the views chapter 6 displays); every value comes from the tables
of :func:`~.report.evaluate_run` unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .summaries import format_number
from .taxonomy import MORPHOLOGY_CLASSES

__all__ = ["SIGNAL_VIEW_COLUMNS", "signal_view", "feature_views", "recall_table", "request_views"]

SIGNAL_VIEW_COLUMNS = (
    "source",
    "n",
    "fid",
    "floor",
    "rfid",
    "rfid_lo",
    "rfid_hi",
    "precision",
    "recall",
    "density",
    "coverage",
    "precision_floor",
    "recall_floor",
    "coverage_floor",
    "clip",
    "clip_shuffled",
)


def signal_view(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``signal`` table's headline columns (:data:`SIGNAL_VIEW_COLUMNS` that it has)."""
    sig = tables["signal"]
    return sig[[c for c in SIGNAL_VIEW_COLUMNS if c in sig]]


def feature_views(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """From the ``features`` table: ``mae`` (source x metric, all records), ``n_valid`` (the same counts) and
    ``hr_mae_per_class`` (class x source, HR error of each requested class)."""
    feat = tables["features"]
    overall = feat[feat["class"] == "all"]
    per_class = feat[(feat["metric"] == "hr") & (feat["class"] != "all")]
    return {
        "mae": overall.pivot_table(index="source", columns="metric", values="mae", sort=False),
        "n_valid": overall.pivot_table(index="source", columns="metric", values="n_valid", sort=False),
        "hr_mae_per_class": per_class.pivot_table(index="class", columns="source", values="mae", sort=False),
    }


def recall_table(tables: dict[str, pd.DataFrame], sources: Sequence[str] = ("real", "vae", "model")) -> pd.DataFrame:
    """Per-class recall with its 95 % Wilson interval, one column per source (``0.62 [0.45, 0.77] (n=30)``),
    morphology classes marked: the benchmark chapter's diagnostic table."""
    d = tables["diagnostic"]
    d = d[d["trained"] & d["source"].isin(sources)]
    cell = d.apply(
        lambda r: (
            f"{format_number(r['recall'])} [{format_number(r['recall_lo'])}, "
            f"{format_number(r['recall_hi'])}] (n={int(r['support'])})"
        ),
        axis=1,
    )
    out = d.assign(cell=cell).pivot_table(index="class", columns="source", values="cell", aggfunc="first", sort=False)
    out = out[[s for s in sources if s in out.columns]]
    out.insert(0, "morphology", [c in MORPHOLOGY_CLASSES for c in out.index])
    return out


def request_views(tables: dict[str, pd.DataFrame], n_examples: int = 5) -> list[pd.DataFrame]:
    """When the evaluation ran the kinds of request (:mod:`.requests`): the summary per kind (macro recall, the share
    showing every requested class, HR MAE, the judge's ceilings), the per-class recall of each kind with its 95 %
    Wilson interval and support beside the judge's recall on the references (``ceiling``) and their reconstructions
    (``vae``), ``n_examples`` reports beside their rewordings, and the held-out combinations; an empty list
    otherwise."""
    summ = tables.get("requests_summary")
    if summ is None or not len(summ):
        return []
    summary = summ.set_index("request").drop(columns=["kind"])
    req = tables["requests"]
    cell = req.apply(
        lambda r: (
            f"{format_number(r['recall'])} [{format_number(r['recall_lo'])}, "
            f"{format_number(r['recall_hi'])}] (n={int(r['support'])})"
        ),
        axis=1,
    )
    kinds = list(summ["kind"])
    per_class = req.assign(cell=cell).pivot_table(
        index="class", columns="kind", values="cell", aggfunc="first", sort=False
    )[[k for k in kinds if k in set(req["kind"])]]
    ceiling = req.pivot_table(index="class", columns="kind", values="reference_recall", aggfunc="first", sort=False)
    for k in ("seen", "combinations"):
        if k in ceiling.columns:
            per_class[f"{k} ceiling"] = ceiling[k].map(format_number)
    vae = req[req["kind"] == "seen"].set_index("class")["vae_recall"]
    per_class["seen vae"] = vae.reindex(per_class.index).map(format_number)
    per_class.insert(0, "morphology", [c in MORPHOLOGY_CLASSES for c in per_class.index])
    cols = [c for c in ("report", "reworded_report", "paraphrased_report") if c in tables["conditions"]]
    return [summary, per_class, tables["conditions"][cols].head(n_examples), tables["combinations"]]
