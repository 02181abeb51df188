"""MIMIC-IV-ECG reader (also used for the embedded cohort, which writes the same layout).

Tables (see CONTRACTS.md):

* ``record_list.csv`` (subject_id, study_id, path) is joined with
  ``machine_measurements.csv`` on (subject_id, study_id) - the paper's inner join. Listed
  records without a measurements row are not dropped silently: they become RecordRefs
  with a ``skip_reason``.
* report = ``report_0..report_17`` non-empty strings (stripped), in column order, joined
  with ``|``.
* ``rr_interval`` (ms) travels as ``rr_interval_ms``; preparation decides whether it is
  plausible.
* age/sex come from an optional MIMIC-IV ``patients`` table (``root/patients.csv`` or
  ``root/hosp/patients.csv[.gz]``). Note that ``anchor_age`` is the patient's age in
  their *anchor year*, not at the time of the ECG (MIMIC shifts dates per patient), and is
  capped at 91 by MIMIC. A subject absent from the table gets age/sex None and a note in
  ``extra["demographics_missing"]``; preparation skips such records with that reason.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .records import DatasetLayoutError, RecordRef, float_or_none, normalise_sex

__all__ = ["read_mimic", "find_patients_table", "MIMIC_LAYOUT", "N_REPORT_COLUMNS"]

log = logging.getLogger(__name__)

MIMIC_LAYOUT = "record_list.csv, machine_measurements.csv and files/ (MIMIC-IV-ECG 1.0 layout)"
N_REPORT_COLUMNS = 18
REPORT_COLUMNS = [f"report_{i}" for i in range(N_REPORT_COLUMNS)]
_PATIENT_CANDIDATES = ("patients.csv", "patients.csv.gz", "hosp/patients.csv", "hosp/patients.csv.gz")


def _check_layout(root: Path) -> None:
    if not root.is_dir():
        raise DatasetLayoutError(root, MIMIC_LAYOUT, "directory does not exist")
    missing = [p for p in ("record_list.csv", "machine_measurements.csv", "files") if not (root / p).exists()]
    if missing:
        raise DatasetLayoutError(root, MIMIC_LAYOUT, f"missing {', '.join(missing)}")


def _read_table(path: Path, required: list[str], optional: list[str] = ()) -> tuple[pd.DataFrame, list[list[str]]]:
    """Read the needed columns of a CSV; rows with a wrong field count are returned apart.

    The fast C parser is tried first; only a file with malformed lines is re-read with the
    (slower) Python parser so that those lines can be reported instead of lost.
    """
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetLayoutError(path, f"columns {required}", f"missing {missing}")
    usecols = [c for c in list(required) + list(optional) if c in header]
    try:
        # pandas >= 3 pads a short row with NaN even when keep_default_na=False; the row readers expect text
        return pd.read_csv(path, usecols=usecols, dtype=str, keep_default_na=False).fillna(""), []
    except pd.errors.ParserError:
        bad: list[list[str]] = []

        def on_bad(fields: list[str]) -> None:
            bad.append(fields)
            return None

        df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="python", on_bad_lines=on_bad)
        return df[usecols].fillna(""), bad


def find_patients_table(root: str | Path) -> Path | None:
    """The first patients table found under ``root``, or None."""
    for cand in _PATIENT_CANDIDATES:
        p = Path(root) / cand
        if p.is_file():
            return p
    return None


def _int_str(value: str) -> str | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or f != int(f):
        return None
    return str(int(f))


def read_mimic(root: str | Path, source: str = "mimic") -> list[RecordRef]:
    """All records of a MIMIC-IV-ECG style folder, ordered by (subject_id, study_id)."""
    root = Path(root)
    _check_layout(root)
    rl, rl_bad = _read_table(root / "record_list.csv", ["subject_id", "study_id", "path"])
    mm, mm_bad = _read_table(
        root / "machine_measurements.csv", ["subject_id", "study_id"], REPORT_COLUMNS + ["rr_interval"]
    )
    if mm_bad:
        log.warning(
            "%s: %d malformed line(s) ignored; their records are skipped as 'no measurements row'",
            root / "machine_measurements.csv",
            len(mm_bad),
        )

    # Key measurements by normalised (subject, study); keep the first of any duplicates.
    mm_keys = [(_int_str(s), _int_str(t)) for s, t in zip(mm["subject_id"], mm["study_id"])]
    report_cols = [c for c in REPORT_COLUMNS if c in mm.columns]
    report_values = mm[report_cols].to_numpy(dtype=object) if report_cols else np.empty((len(mm), 0), object)
    rr_values = mm["rr_interval"].to_numpy(dtype=object) if "rr_interval" in mm.columns else [""] * len(mm)
    measurements: dict[tuple[str | None, str | None], int] = {}
    n_dup = 0
    for i, key in enumerate(mm_keys):
        if key in measurements:
            n_dup += 1
            continue
        measurements[key] = i
    if n_dup:
        log.warning(
            "%s: %d duplicate (subject_id, study_id) rows; the first of each is used",
            root / "machine_measurements.csv",
            n_dup,
        )

    demographics: dict[str, tuple[float | None, str | None]] = {}
    patients_path = find_patients_table(root)
    if patients_path is not None:
        patients, _ = _read_table(patients_path, ["subject_id", "gender", "anchor_age"])
        for s, g, a in zip(patients["subject_id"], patients["gender"], patients["anchor_age"]):
            sid = _int_str(s)
            if sid is not None and sid not in demographics:
                demographics[sid] = (float_or_none(a), normalise_sex(g))
        no_demo = f"subject not in {patients_path.relative_to(root)}"
    else:
        no_demo = (
            "age/sex unknown: no patients table (expected "
            + " or ".join(f"{root}/{c}" for c in _PATIENT_CANDIDATES)
            + ")"
        )

    refs: list[RecordRef] = []
    for subject_raw, study_raw, rel in zip(rl["subject_id"], rl["study_id"], rl["path"]):
        subject, study = _int_str(subject_raw), _int_str(study_raw)
        ref = RecordRef(
            record_id=study or str(study_raw), subject_id=subject or str(subject_raw), path="", source=source
        )
        rel = str(rel).strip()
        problems = []
        if subject is None or study is None:
            problems.append(f"subject_id {subject_raw!r} / study_id {study_raw!r} are not integers")
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"path {rel!r} is not a record path inside the dataset")
        else:
            ref.path = str(root / rel)
        if problems:
            ref.skip_reason = "malformed record_list.csv row: " + "; ".join(problems)
            refs.append(ref)
            continue
        row = measurements.get((subject, study))
        if row is None:
            ref.skip_reason = "no machine_measurements.csv row for this (subject_id, study_id)"
            refs.append(ref)
            continue
        ref.report = "|".join(s.strip() for s in report_values[row] if isinstance(s, str) and s.strip())
        ref.rr_interval_ms = float_or_none(rr_values[row])
        if subject in demographics:
            ref.age, ref.sex = demographics[subject]
        else:
            ref.extra["demographics_missing"] = no_demo
        refs.append(ref)

    for fields in rl_bad:
        refs.append(
            RecordRef(
                record_id=f"{fields[1] if len(fields) > 1 else '?'}",
                subject_id=fields[0] if fields else "",
                path="",
                source=source,
                skip_reason=f"malformed record_list.csv row: {len(fields)} fields, expected {len(rl.columns)}",
            )
        )

    def order(ref: RecordRef) -> tuple[int, int, int, str]:
        try:
            return (0, int(ref.subject_id), int(ref.record_id), "")
        except ValueError:
            return (1, 0, 0, ref.subject_id + "/" + ref.record_id)

    refs.sort(key=order)
    return refs
