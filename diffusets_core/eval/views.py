"""The benchmark's tables shaped for reading (the views chapter 6 displays); every value comes from the tables
of :func:`~.report.evaluate_run` unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .summaries import format_number
from .taxonomy import MORPHOLOGY_CLASSES

__all__ = ["SIGNAL_VIEW_COLUMNS", "signal_view", "feature_views", "recall_table", "paraphrase_views"]

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


def paraphrase_views(tables: dict[str, pd.DataFrame], n_examples: int = 5) -> list[pd.DataFrame]:
    """When the evaluation ran the paraphrase set: the model against the paraphrased reports (HR MAE 50-150,
    morphology and all-class macro recall), ``n_examples`` reports beside their rewording, and the unseen
    statement combinations; an empty list otherwise."""
    sd = tables["diagnostic_summary"].set_index("source")
    if "paraphrased" not in sd.index:
        return []
    hr = tables["features"].query("`class` == 'all' and metric == 'hr_50_150'").set_index("source")
    both = ["model", "paraphrased"]
    comparison = pd.DataFrame(
        {
            "HR MAE 50-150 (bpm)": hr.loc[both, "mae"],
            "morphology macro recall": sd.loc[both, "macro_recall_morphology"],
            "macro recall": sd.loc[both, "macro_recall"],
        }
    )
    return [
        comparison,
        tables["conditions"][["report", "paraphrased_report"]].head(n_examples),
        tables["unseen_combinations"],
    ]
