"""The generation chapter's conditions: which reports and patients to generate, and the heart-rate sweep.

Report pickers are policy shared by the chapter and any script that repeats it: the most frequent reports of a
split, the median heart rate of the training ECGs carrying a report, and the rate-matched report (sinus
bradycardia below 60 bpm, sinus rhythm up to 100, sinus tachycardia above) a clinician would write for a rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..eval.features import hr_error

__all__ = [
    "report_patient_grid",
    "most_frequent_report",
    "RateReports",
    "rate_reports",
    "hr_sweep_conditions",
    "hr_sweep_summary",
]


def report_patient_grid(
    test: pd.DataFrame, train: pd.DataFrame, patients: Sequence[tuple[str, int]], n_reports: int = 4
) -> pd.DataFrame:
    """The ``n_reports`` most frequent reports of ``test``, each for every ``(sex, age)`` of ``patients``, at the
    median heart rate (rounded, bpm) of the ``train`` records with that report (all of ``train`` if none).
    Columns ``report, sex, age, hr``; rows report-major."""
    rows = []
    for rep in test["report"].value_counts().index[:n_reports].tolist():
        same = train.loc[train["report"] == rep, "hr"]
        hr = float(same.median()) if len(same) else float(train["hr"].median())
        for sex, age in patients:
            rows.append({"report": rep, "sex": sex, "age": age, "hr": round(hr)})
    return pd.DataFrame(rows)


def most_frequent_report(records: pd.DataFrame, first_statement: str) -> str | None:
    """The most frequent report of ``records`` whose leading statement is ``first_statement`` (case-insensitive),
    or ``None`` when no report starts with it."""
    first = records["report"].str.split("|").str[0].str.strip().str.lower()
    cands = records.loc[first == first_statement.lower(), "report"]
    return cands.value_counts().index[0] if len(cands) else None


class RateReports:
    """Reports to request a heart rate with: :meth:`matched` names the rhythm that fits the rate (bradycardia below
    60 bpm, tachycardia above 100, else sinus rhythm); :attr:`fixed` is the sinus-rhythm report for every rate.
    A missing rhythm falls back to the most frequent report of the records."""

    def __init__(self, records: pd.DataFrame):
        self.reports = {
            "brady": most_frequent_report(records, "Sinus bradycardia"),
            "sinus": most_frequent_report(records, "Sinus rhythm"),
            "tachy": most_frequent_report(records, "Sinus tachycardia"),
        }
        self.fallback = records["report"].value_counts().index[0]
        self.fixed = self.reports["sinus"] or self.fallback

    def matched(self, hr: float) -> str:
        key = "brady" if hr < 60 else ("tachy" if hr > 100 else "sinus")
        return self.reports[key] or self.fallback


def rate_reports(records: pd.DataFrame) -> RateReports:
    """:class:`RateReports` of ``records`` (the training split)."""
    return RateReports(records)


def hr_sweep_conditions(
    reports: RateReports, hr_sweep: Sequence[float], n_per_condition: int, age: float = 55
) -> pd.DataFrame:
    """Conditions of the heart-rate sweep: two series (``rate-matched report``, ``fixed report``) x the requested
    rates x ``n_per_condition`` ECGs alternating M/F. Columns ``series, requested HR, report, sex, age``."""
    rows = []
    for series, pick in (("rate-matched report", reports.matched), ("fixed report", lambda hr: reports.fixed)):
        for hr in hr_sweep:
            for j in range(n_per_condition):
                rows.append(
                    {"series": series, "requested HR": float(hr), "report": pick(hr), "sex": "MF"[j % 2], "age": age}
                )
    return pd.DataFrame(rows)


def hr_sweep_summary(sweep: pd.DataFrame) -> dict[str, dict]:
    """Per series, :func:`~diffusets_core.eval.features.hr_error` of ``measured HR`` against ``requested HR``."""

    return {s: hr_error(g["measured HR"].to_numpy(), g["requested HR"].to_numpy()) for s, g in sweep.groupby("series")}
