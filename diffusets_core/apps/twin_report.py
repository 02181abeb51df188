"""The digital twin's targets and its reading, written from the measured tables (nothing typed by hand).

Targets (fixed before any measurement, on the cpu profile's test subjects):

* **personal consistency**: the twin's ECG is closer (median-beat correlation) to its own subject's target than to
  the counterpart (the same request on another subject's heart) in at least :data:`CONSISTENCY_TARGET` of the
  requests; the reference-free model, which knows nothing of the subject, is the floor (about one half);
* **condition following**: the twin's morphology macro recall (the benchmark's judge) is within
  :data:`FOLLOWING_MARGIN` of the reference-free model's on the same requests.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["CONSISTENCY_TARGET", "FOLLOWING_MARGIN", "MODEL_LABELS", "twin_targets", "summarize_twin"]

CONSISTENCY_TARGET = 0.80
FOLLOWING_MARGIN = 0.05
MODEL_LABELS = {
    "twin": "twin, with the reference",
    "twin_without_reference": "twin, reference dropped",
    "reference_free": "reference-free model (the base run's U-Net)",
    "reference_copy": "yardstick: the reference copied (through the VAE)",
    "target_through_vae": "ceiling: the real target through the VAE",
}


def _fmt(x: Any, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def twin_targets(consistency: pd.DataFrame, following: pd.DataFrame) -> pd.DataFrame:
    """One row per target: ``target``, ``needed``, ``measured``, ``floor`` (the reference-free model's value),
    ``met`` (bool; False when not measurable). ``consistency`` / ``following`` are the summaries of
    :func:`~diffusets_core.apps.twin_eval.evaluate_twin` (one row per model)."""
    c = consistency.set_index("model")
    f = following.set_index("model")
    share, floor = float(c.loc["twin", "share_closer"]), float(c.loc["reference_free", "share_closer"])
    twin_recall = float(f.loc["twin", "macro_recall_morphology"])
    free_recall = float(f.loc["reference_free", "macro_recall_morphology"])
    gap = free_recall - twin_recall
    return pd.DataFrame(
        [
            {
                "target": "personal consistency: share closer to own target (median-beat correlation)",
                "needed": f">= {CONSISTENCY_TARGET:.2f}",
                "measured": share,
                "floor": floor,
                "met": bool(share >= CONSISTENCY_TARGET),
            },
            {
                "target": "condition following: morphology macro recall, reference-free minus twin",
                "needed": f"<= {FOLLOWING_MARGIN:.2f}",
                "measured": gap,
                "floor": free_recall,
                "met": bool(gap <= FOLLOWING_MARGIN) if not math.isnan(gap) else False,
            },
        ]
    )


def summarize_twin(
    consistency: pd.DataFrame, following: pd.DataFrame, *, n_requests: int, n_subjects: int, train: dict[str, Any]
) -> str:
    """The chapter's reading, as markdown: each target met or missed with its numbers, the floor, how the twin
    differs from the same weights without a reference, and where it copies the reference instead of applying the
    new report (the carried-over findings beside the reference-free model's rate)."""
    c, f = consistency.set_index("model"), following.set_index("model")
    t = twin_targets(consistency, following).set_index("target")
    tc, tf = t.iloc[0], t.iloc[1]
    lo, hi = c.loc["twin", "share_closer_ci"] if "share_closer_ci" in c.columns else (math.nan, math.nan)
    lines = [
        f"**Requests**: {n_requests} pairs of {n_subjects} test subjects of the twin cohort (earlier record as "
        f"reference, the later record's report, patient values and heart rate requested); the twin was fine-tuned "
        f"{train.get('steps')} steps from the base run's U-Net on {train.get('n_train')} training records of "
        f"{train.get('n_subjects')} subjects.",
        "",
        f"- **Personal consistency {_verdict(bool(tc['met']), lo, hi, CONSISTENCY_TARGET)}**: the twin's ECG was "
        f"closer to its own "
        f"subject's target than to the same request on another subject's heart in {_fmt(tc['measured'])} of the "
        f"readable requests (95 % bootstrap interval over subjects {_fmt(lo)}–{_fmt(hi)}; needed {tc['needed']})"
        + _complete_note(c)
        + ". The "
        f"reference-free model, which knows nothing of the subject, reaches {_fmt(tc['floor'])}; the same twin "
        f"weights with the reference dropped {_fmt(c.loc['twin_without_reference', 'share_closer'])}. Median "
        f"correlation of the twin's median beat with the own target {_fmt(c.loc['twin', 'median_corr_own'])}, with "
        f"the counterpart {_fmt(c.loc['twin', 'median_corr_other'])}.",
        f"- **Condition following {'met' if tf['met'] else 'missed'}**: morphology macro recall {_fmt(f.loc['twin', 'macro_recall_morphology'])} "
        f"for the twin against {_fmt(tf['floor'])} for the reference-free model (a gap of {_fmt(tf['measured'])}; "
        f"allowed {tf['needed']}); the judge reads {_fmt(f.loc['twin', 'target_macro_recall_morphology'])} on the "
        "real targets themselves.",
        f"- **New findings**: of the requested morphology findings the reference does not show, the twin drew "
        f"{_fmt(f.loc['twin', 'new_findings_recall'])} (reference-free {_fmt(f.loc['reference_free', 'new_findings_recall'])}; "
        f"{int(f.loc['twin', 'new_findings_n'])} requested findings).",
        f"- **Copying**: findings the reference shows and the new report does not ask for were read in "
        f"{_fmt(f.loc['twin', 'carried_over'])} of the cases for the twin (95 % interval "
        f"{_fmt(f.loc['twin', 'carried_over_lo'])}–{_fmt(f.loc['twin', 'carried_over_hi'])}), against "
        f"{_fmt(f.loc['reference_free', 'carried_over'])} for the reference-free model on the same requests "
        f"({int(f.loc['twin', 'carried_over_n'])} cases). "
        + _copy_reading(float(f.loc["twin", "carried_over"]), float(f.loc["reference_free", "carried_over"])),
    ]
    with_ref, without = float(c.loc["twin", "share_closer"]), float(c.loc["twin_without_reference", "share_closer"])
    if abs(with_ref - without) < 0.05:
        lines.append(
            f"- **The reference makes no measurable difference**: the twin's ECGs are as close to their subject with "
            f"the reference as without it ({_fmt(with_ref)} against {_fmt(without)}): with this training the reference "
            "encoder has not learned to pass the patient's heart on, and the twin behaves as the fine-tuned base model."
        )
    if "target_through_vae" in c.index and "reference_copy" in c.index:
        lines.append(
            f"- **What bounds it**: the real target itself, through the run's VAE, is closer to its own subject than to "
            f"the counterpart in {_fmt(c.loc['target_through_vae', 'share_closer'])} of the requests: what a generator "
            f"that drew each target's latent exactly would score on this autoencoder (the ceiling, up to the sampling "
            f"error of {int(c.loc['twin', 'n_readable'])} requests). Copying the reference (through the VAE) scores "
            f"{_fmt(c.loc['reference_copy', 'share_closer'])}, but shows the requested findings with a macro recall "
            f"of {_fmt(f.loc['reference_copy', 'macro_recall_morphology'])} and carries the reference's own findings "
            f"over in {_fmt(f.loc['reference_copy', 'carried_over'])} of the cases: the measures tell a copier from a "
            "twin."
        )
    return "\n".join(lines)


def _complete_note(c: pd.DataFrame) -> str:
    """``; over the N requests whose counterpart is complete, X`` when the summary has that share."""
    if "share_closer_complete" not in c.columns or pd.isna(c.loc["twin", "share_closer_complete"]):
        return ""
    return (
        f"; over the {int(c.loc['twin', 'n_complete'])} requests whose counterpart was made exactly as asked, "
        f"{_fmt(float(c.loc['twin', 'share_closer_complete']))}"
    )


def _verdict(met: bool, lo: float, hi: float, target: float) -> str:
    """``met`` / ``missed``, and ``undecided`` when the interval holds the target on both sides of the estimate."""
    if not (math.isnan(lo) or math.isnan(hi)) and lo < target <= hi and (met or hi >= target):
        return f"{'met' if met else 'missed'} on the estimate, undecided within its interval"
    return "met" if met else "missed"


def _copy_reading(twin: float, free: float) -> str:
    if math.isnan(twin) or math.isnan(free):
        return "Too few such cases to read."
    if twin > free + 0.05:
        return (
            "The twin carries the reference's findings into the new ECG more often than they appear without a "
            "reference: where the report and the reference disagree, it partly copies the reference."
        )
    return "The twin does not carry the reference's findings over more often than they appear without a reference."
