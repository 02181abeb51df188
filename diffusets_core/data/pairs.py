"""Pairs of one subject's records, earlier -> later: the data for conditioning on a patient's own earlier ECG.

A pair is ``(reference_record, target_record)`` of one subject within one split, the reference acquired no later
than the target. Times come from the sources' own tables: MIMIC-IV-ECG's ``record_list.csv`` ``ecg_time`` (the
embedded cohort writes the same column) and PTB-XL's ``ptbxl_database.csv`` ``recording_date``. A plain WFDB folder
has no such table, so it has no pairs here.

The prepared manifest keeps no time column: adding one would change every prepared run's ``manifest.csv``. So
:func:`run_pairs` reads the times from the source folder that ``prepare.json`` names (``source``, ``data_dir``)
when pairs are asked for, and joins them to the manifest's ok records by ``record_id``.

Dates are as the datasets shift them (MIMIC: per patient into 2100-2200, so only differences within a subject
mean something; PTB-XL: real dates). Records with the same time are ordered by record id (numerically where the
ids are numbers).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TIME_COLUMN", "PAIR_COLUMNS", "TIMED_SOURCES", "record_times", "subject_pairs", "run_pairs"]

log = logging.getLogger(__name__)

#: The acquisition-time column :func:`subject_pairs` reads (datetime, or text :func:`pandas.to_datetime` parses).
TIME_COLUMN = "time"
#: Columns of a pairs table, in order.
PAIR_COLUMNS = (
    "subject_id",
    "split",
    "reference_record",
    "target_record",
    "reference_time",
    "target_time",
    "days_between",
    "reference_order",
    "target_order",
)
#: source -> (table, record id column, subject id column, time column) of the sources that keep acquisition times.
TIMED_SOURCES: dict[str, tuple[str, str, str, str]] = {
    "mimic": ("record_list.csv", "study_id", "subject_id", "ecg_time"),
    "cohort": ("record_list.csv", "study_id", "subject_id", "ecg_time"),
    "ptbxl": ("ptbxl_database.csv", "ecg_id", "patient_id", "recording_date"),
}


def _int_id(value: object) -> str:
    """An id as the readers write it: ``"15709.0"`` -> ``"15709"``; text that is not an integer stays as it is."""
    text = str(value).strip()
    try:
        f = float(text)
    except ValueError:
        return text
    return str(int(f)) if np.isfinite(f) and f == int(f) else text


def record_times(source: str, data_dir: str | os.PathLike) -> pd.DataFrame:
    """Acquisition time of every record listed in a source folder: columns ``record_id``, ``subject_id`` (ids
    normalised as the readers do, :mod:`.mimic`, :mod:`.ptbxl`) and ``time`` (datetime; NaT where the cell is
    empty or not a date).

    Raises:
        ValueError: ``source`` keeps no acquisition times (not in :data:`TIMED_SOURCES`).
        FileNotFoundError: the source's table is not in ``data_dir``.
        KeyError: the table lacks one of the columns named in :data:`TIMED_SOURCES` (the message names it).
    """
    if source not in TIMED_SOURCES:
        raise ValueError(f"source {source!r} keeps no acquisition times; sources with times: {sorted(TIMED_SOURCES)}")
    table, rid, sid, when = TIMED_SOURCES[source]
    path = Path(data_dir) / table
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {table} (the {source} table with acquisition times)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in (rid, sid, when) if c not in df.columns]
    if missing:
        raise KeyError(f"{path}: columns {missing} missing (needed for acquisition times)")
    return pd.DataFrame(
        {
            "record_id": [_int_id(v) for v in df[rid]],
            "subject_id": [_int_id(v) for v in df[sid]],
            TIME_COLUMN: pd.to_datetime(df[when].str.strip().replace("", None), errors="coerce"),
        }
    )


def _id_key(ids: pd.Series) -> pd.Series:
    """A sort key for ids: numbers numerically, before any id that is not a number."""
    num = pd.to_numeric(ids, errors="coerce")
    return num.fillna(np.inf)


def subject_pairs(
    records: pd.DataFrame, times: pd.DataFrame | None = None, *, consecutive: bool = False
) -> pd.DataFrame:
    """Every ordered pair (earlier -> later) of one subject's records within one split.

    Args:
        records: one row per record with ``record_id`` and ``subject_id`` (e.g. ``SignalStore(run).records()``,
            or :func:`record_times`), optionally ``split`` (pairs never cross it; without it all records are one
            split, ``""``) and ``time`` (:data:`TIME_COLUMN`).
        times: a table with ``record_id`` and ``time`` (:func:`record_times`) giving the times when ``records``
            has none; joined by ``record_id``.
        consecutive: only pairs of chronologically adjacent records (``k - 1`` pairs for a subject's ``k``
            records instead of ``k (k - 1) / 2``).

    Returns:
        :data:`PAIR_COLUMNS`: ids as text, times as datetimes, ``days_between`` (float days, >= 0), and each
        record's place (0-based) among its subject's records of that split in time order. Sorted by subject,
        split, reference and target place. Records without a time are left out (a warning says how many); a
        subject found in several splits gets pairs within each (a warning says how many such subjects).

    Raises:
        ValueError: ``records`` (or ``times``) lacks a needed column; the message names it.
    """
    missing = [c for c in ("record_id", "subject_id") if c not in records.columns]
    if missing:
        raise ValueError(
            f"records table: column(s) {missing} missing; pairing needs record_id and subject_id "
            f"(columns present: {list(records.columns)})"
        )
    cols = ["record_id", "subject_id"] + (["split"] if "split" in records.columns else [])
    frame = records[cols].astype(str).copy()
    if "split" not in frame.columns:
        frame["split"] = ""
    if TIME_COLUMN in records.columns:
        frame[TIME_COLUMN] = pd.to_datetime(records[TIME_COLUMN].to_numpy(), errors="coerce")
    elif times is not None:
        lacking = [c for c in ("record_id", TIME_COLUMN) if c not in times.columns]
        if lacking:
            raise ValueError(f"times table: column(s) {lacking} missing (columns present: {list(times.columns)})")
        by_id = pd.Series(
            pd.to_datetime(times[TIME_COLUMN].to_numpy(), errors="coerce"), index=times["record_id"].astype(str)
        )
        by_id = by_id[~by_id.index.duplicated()]
        frame[TIME_COLUMN] = frame["record_id"].map(by_id)
    else:
        raise ValueError(
            f"records table: no {TIME_COLUMN!r} column and no times table; pairs are ordered by acquisition time "
            "(record_times(source, data_dir) reads them, run_pairs(run_dir) does it for a prepared run)"
        )
    untimed = frame[TIME_COLUMN].isna()
    if untimed.any():
        log.warning(
            "%d of %d record(s) without an acquisition time are left out of the pairs", untimed.sum(), len(frame)
        )
        frame = frame[~untimed]
    splits_per_subject = frame.groupby("subject_id")["split"].nunique()
    if (splits_per_subject > 1).any():
        log.warning(
            "%d subject(s) have records in several splits; their pairs stay within each split",
            int((splits_per_subject > 1).sum()),
        )
    frame = frame.assign(_s=_id_key(frame["subject_id"]), _r=_id_key(frame["record_id"]))
    frame = frame.sort_values(["_s", "subject_id", "split", TIME_COLUMN, "_r", "record_id"], kind="stable")
    out: list[pd.DataFrame] = []
    for (subject, split), grp in frame.groupby(["subject_id", "split"], sort=False):
        k = len(grp)
        if k < 2:
            continue
        i, j = (np.arange(k - 1), np.arange(1, k)) if consecutive else np.triu_indices(k, 1)
        rid, when = grp["record_id"].to_numpy(), grp[TIME_COLUMN].to_numpy()
        out.append(
            pd.DataFrame(
                {
                    "subject_id": subject,
                    "split": split,
                    "reference_record": rid[i],
                    "target_record": rid[j],
                    "reference_time": when[i],
                    "target_time": when[j],
                    "days_between": (when[j] - when[i]) / np.timedelta64(1, "D"),
                    "reference_order": i,
                    "target_order": j,
                }
            )
        )
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS})
    return pd.concat(out, ignore_index=True)[list(PAIR_COLUMNS)]


def run_pairs(run_dir: str | os.PathLike, split: str | None = None, *, consecutive: bool = False) -> pd.DataFrame:
    """:func:`subject_pairs` of a prepared run's ok records (of one split, if given), with the times read from the
    source folder recorded in its ``prepare.json`` (:func:`record_times`).

    Raises:
        FileNotFoundError: the run is not prepared, or its source folder (or table) is gone.
        ValueError: the run's source keeps no acquisition times (a WFDB folder).
    """
    from .store import SignalStore

    store = SignalStore(run_dir)
    source, data_dir = store.info.get("source"), store.info.get("data_dir")
    if not source or not data_dir:
        raise FileNotFoundError(f"{store.data_dir}/prepare.json: no source and data_dir recorded")
    return subject_pairs(store.records(split), record_times(source, data_dir), consecutive=consecutive)
