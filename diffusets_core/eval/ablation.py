"""Findings of the generator ablation table (``benchmarks/generator_ablation.py``) as sentences.

The ablation trains each variant of the generator for the same wall-clock time and reads all of them with one
judge; its table has one row per variant (plus the real test ECGs and each VAE's ceiling) and, when several
runs were merged, a ``run`` column. Rows are compared only within a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["summarize_ablation", "ABLATION_COLUMNS", "read_ablation_table", "ablation_view", "describe_ablation"]

#: The columns the benchmark chapter shows of the ablation table (those the table has).
ABLATION_COLUMNS = (
    "run",
    "variant",
    "train_steps",
    "guidance",
    "macro_recall_morphology",
    "recall_rbbb",
    "recall_lbbb",
    "recall_t_inversion",
    "recall_atrial_fibrillation",
    "recall_av_block_1",
    "recall_st_elevation",
    "rfid",
    "recall",
    "hr_mae_50_150",
    "para_hr_mae_50_150",
    "para_macro_recall_morphology",
    "all_requested",
    "b_macro_recall_morphology",
    "b_hr_mae_50_150",
    "c_macro_recall_morphology",
    "c_all_requested",
    "d_macro_recall_morphology",
    "identity_uv_median",
    "rr_cv_sinus",
    "rr_cv_atrial_fibrillation",
)

REFERENCE_PREFIXES = ("real test ECGs", "real val ECGs", "VAE ceiling")


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def summarize_ablation(table: pd.DataFrame) -> list[str]:
    """Markdown bullet lines, every number read from ``table``: per run, the variants ranked by morphology macro
    recall (best and worst, with the real ECGs' and the VAE ceiling's values), the best on paraphrased reports
    (HR MAE and morphology recall, when measured), and the best rFID and HR MAE. Raises ValueError when the
    table lacks ``variant`` or ``macro_recall_morphology``."""
    for col in ("variant", "macro_recall_morphology"):
        if col not in table:
            raise ValueError(f"ablation table has no {col!r} column (columns: {list(table.columns)})")
    df = table.copy()
    if "run" not in df:
        df["run"] = 1
    lines: list[str] = []
    for run, part in df.groupby("run", sort=True):
        ref = part[part["variant"].str.startswith(REFERENCE_PREFIXES)]
        var = part[~part["variant"].str.startswith(REFERENCE_PREFIXES)].copy()
        var["variant"] = var["variant"].str.strip()
        if var.empty:
            continue
        head = f"Run {run}" if df["run"].nunique() > 1 else "The ablation"
        ranked = var.sort_values("macro_recall_morphology", ascending=False)
        best, worst = ranked.iloc[0], ranked.iloc[-1]
        refs = "; ".join(f"{r['variant']} {_fmt(r['macro_recall_morphology'])}" for _, r in ref.iterrows())
        lines.append(
            f"- {head}: highest morphology macro recall **{best['variant']}** "
            f"({_fmt(best['macro_recall_morphology'])}), lowest {worst['variant']} "
            f"({_fmt(worst['macro_recall_morphology'])})" + (f"; for reference {refs}." if refs else ".")
        )
        if len(ranked) > 2:
            lines.append(
                "  Order: "
                + " > ".join(f"{r['variant']} ({_fmt(r['macro_recall_morphology'])})" for _, r in ranked.iterrows())
                + "."
            )
        for col, label, asc in (
            ("para_hr_mae_50_150", "HR MAE on paraphrased reports (bpm)", True),
            ("para_macro_recall_morphology", "morphology recall on paraphrased reports", False),
            ("b_macro_recall_morphology", "morphology recall on (b) held-out wordings", False),
            ("b_hr_mae_50_150", "HR MAE on (b) held-out wordings (bpm)", True),
            ("c_macro_recall_morphology", "morphology recall on (c) held-out combinations", False),
            ("c_all_requested", "share showing every requested class on (c) held-out combinations", False),
            ("d_macro_recall_morphology", "morphology recall on (d) paraphrases.yaml", False),
            ("hr_mae_50_150", "HR MAE (bpm)", True),
            ("rfid", "rFID", True),
        ):
            if col in var and var[col].notna().any():
                r = var.sort_values(col, ascending=asc).iloc[0]
                lines.append(
                    f"  Best {label}: {r['variant']} ({_fmt(r[col])}; range "
                    f"{_fmt(var[col].min())}–{_fmt(var[col].max())})."
                )
    return lines


def read_ablation_table(csv_path: str | os.PathLike) -> pd.DataFrame | None:
    """The table ``benchmarks/generator_ablation.py`` wrote to ``csv_path``; None when there is none."""
    path = Path(csv_path)
    return pd.read_csv(path) if path.is_file() else None


def ablation_view(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`ABLATION_COLUMNS` that ``table`` has, in that order."""
    return table[[c for c in ABLATION_COLUMNS if c in table]]


def describe_ablation(csv_path: str | os.PathLike, table: pd.DataFrame | None, *, root: str | os.PathLike) -> list[str]:
    """Markdown paragraphs about the ablation results at ``csv_path``: :func:`summarize_ablation` of ``table`` and
    the note of how and where it was measured (the ``note`` of the JSON beside the CSV), or, when ``table`` is
    None, that this checkout has none (path shown relative to ``root``, the repository)."""
    path = Path(csv_path)
    if table is None:
        return [f"No ablation table in this checkout (`{path.relative_to(root)}`)."]
    lines = ["\n".join(summarize_ablation(table))]
    meta = path.with_suffix(".json")
    if meta.is_file():
        lines.append(json.loads(meta.read_text()).get("note", ""))
    return lines
