"""Tables that describe a prepared run's records (the data chapter's views): counts, splits, statements.

Inputs are the frames of :class:`~diffusets_core.data.store.SignalStore`: ``manifest`` (one row per source record,
``status`` ``ok``/``skipped``) and ``records`` (the usable ones: ``record_id``, ``subject_id``, ``split``,
``report`` with statements joined by ``|``, ``hr``, ``age``, ``sex``).
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "SPLITS",
    "record_counts",
    "split_table",
    "subjects_in_several_splits",
    "statements",
    "statement_table",
    "first_statements",
    "example_per_first_statement",
    "skipped_records",
]

SPLITS = ("train", "val", "test")


def record_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """One column ``records``: in the source, prepared (``ok``), skipped (with a reason)."""
    return pd.DataFrame(
        {"records": [len(manifest), int((manifest.status == "ok").sum()), int((manifest.status == "skipped").sum())]},
        index=["in the source", "prepared (ok)", "skipped (with a reason)"],
    )


def split_table(records: pd.DataFrame) -> pd.DataFrame:
    """Records and distinct subjects per split, in the order train, val, test (splits without records left out)."""
    counts = records.groupby("split").agg(records=("record_id", "size"), subjects=("subject_id", "nunique"))
    return counts.loc[[s for s in SPLITS if s in counts.index]]


def subjects_in_several_splits(records: pd.DataFrame) -> int:
    """How many subjects have records in more than one split (0 for a subject-level split)."""
    return int((records.groupby("subject_id")["split"].nunique() > 1).sum())


def statements(records: pd.DataFrame) -> pd.Series:
    """Every statement of every report, stripped, one row each (index: the record's row)."""
    return records["report"].str.split("|").explode().str.strip()


def statement_table(records: pd.DataFrame) -> pd.DataFrame:
    """Statements by frequency: ``records`` (how many reports contain it) and ``share of records`` (3 decimals)."""
    top = statements(records).value_counts().rename("records").to_frame()
    top["share of records"] = (top["records"] / len(records)).round(3)
    return top


def first_statements(records: pd.DataFrame) -> pd.Series:
    """The leading statement of each report, stripped (index: the record's row)."""
    return records["report"].str.split("|").str[0].str.strip()


def example_per_first_statement(records: pd.DataFrame, k: int = 4) -> list:
    """Row labels of the first record for each of the ``k`` most frequent leading statements, most frequent first."""
    first = first_statements(records)
    return [first[first == stmt].index[0] for stmt in first.value_counts().index[:k]]


def skipped_records(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest's skipped rows: ``record_id``, ``source_path``, ``reason``."""
    return manifest[manifest.status == "skipped"][["record_id", "source_path", "reason"]]
