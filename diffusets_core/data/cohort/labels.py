"""Reading the embedded cohort: the MIMIC-IV-ECG reader plus the cohort's structured labels.

The cohort is written in the MIMIC-IV-ECG layout and read by :func:`~diffusets_core.data.mimic.read_mimic`
unchanged; this module adds what only the cohort has, ``cohort_labels.csv``'s ``findings`` column (the finding ids
of each report's statements, in report order), to each record, so the benchmark's labels come from structured
labels rather than from patterns on the (freely worded) report text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..mimic import read_mimic
from ..records import RecordRef

__all__ = ["LABELS_FILE", "read_cohort"]

LABELS_FILE = "cohort_labels.csv"


def read_cohort(root: str | Path) -> list[RecordRef]:
    """All records of a cohort folder (:func:`~diffusets_core.data.mimic.read_mimic`, source ``"cohort"``), each
    with ``findings`` from ``cohort_labels.csv`` (matched by ``study_id``).

    A cohort without the table or its ``findings`` column (built before structured labels existed) is read
    without them (``findings`` stays ""), so its benchmark labels fall back to statement patterns.

    Raises:
        ValueError: ``cohort_labels.csv`` has a ``findings`` column but no ``study_id`` column.
    """
    root = Path(root)
    refs = read_mimic(root, source="cohort")
    path = root / LABELS_FILE
    if not path.is_file():
        return refs
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "findings" not in table.columns:
        return refs
    if "study_id" not in table.columns:
        raise ValueError(f"{path}: a findings column without a study_id column to match records by")
    by_study = dict(zip(table["study_id"].str.strip(), table["findings"]))
    for ref in refs:
        ref.findings = by_study.get(ref.record_id, "")
    return refs
