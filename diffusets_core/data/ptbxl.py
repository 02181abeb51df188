"""PTB-XL 1.0.x reader: ``ptbxl_database.csv`` + ``scp_statements.csv`` -> RecordRefs.

Report rule (documented in the book's data chapter): the statements of one record are

1. the free-text ``report`` column (stripped; omitted when empty), then
2. the description (``scp_statements.csv`` column ``description``) of every SCP code in
   ``scp_codes``, in the order the dict literal lists them, duplicates removed. All codes
   are kept whatever their likelihood: PTB-XL gives rhythm and form statements a
   likelihood of 0 ("not specified"), so filtering on it would drop e.g. sinus rhythm.
   A code missing from ``scp_statements.csv`` contributes the code itself.

joined with ``|``, like MIMIC-IV-ECG's ``report_0..report_17``.

Only the 500 Hz records (``filename_hr``) are used. PTB-XL codes ages above 89 as 300
(de-identification); those become 90 and the RecordRef's ``extra["age_note"]`` says so.
``scp_codes`` is parsed with :func:`ast.literal_eval`, never ``eval``.
"""

from __future__ import annotations

import ast
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .records import DatasetLayoutError, RecordRef

__all__ = ["read_ptbxl", "ptbxl_report", "PTBXL_LAYOUT"]

log = logging.getLogger(__name__)

PTBXL_LAYOUT = "ptbxl_database.csv and records500/ (PTB-XL 1.0.x layout)"
PTBXL_AGE_CODED_OVER_89 = 300
SOURCE = "ptbxl"


def _check_layout(root: Path) -> None:
    if not root.is_dir():
        raise DatasetLayoutError(root, PTBXL_LAYOUT, "directory does not exist")
    missing = [p for p in ("ptbxl_database.csv", "records500") if not (root / p).exists()]
    if missing:
        raise DatasetLayoutError(root, PTBXL_LAYOUT, f"missing {', '.join(missing)}")


def _read_csv_keeping_bad_lines(path: Path) -> tuple[pd.DataFrame, list[list[str]]]:
    """Read a CSV; rows with the wrong number of fields are returned separately, not lost."""
    bad: list[list[str]] = []

    def on_bad(fields: list[str]) -> None:
        bad.append(fields)
        return None

    df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="python", on_bad_lines=on_bad)
    # pandas >= 3 pads a short row with NaN even when keep_default_na=False; the row readers expect text
    return df.fillna(""), bad


def _scp_descriptions(root: Path) -> dict[str, str]:
    path = root / "scp_statements.csv"
    if not path.is_file():
        log.warning("%s not found: SCP codes are used as their own descriptions", path)
        return {}
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    code_col = df.columns[0]  # the unnamed first column holds the SCP code
    if "description" not in df.columns:
        raise DatasetLayoutError(path, "a 'description' column (PTB-XL scp_statements.csv)")
    return {str(c).strip(): str(d).strip() for c, d in zip(df[code_col], df["description"])}


def ptbxl_report(report: str, scp_codes: dict[str, Any], descriptions: dict[str, str]) -> str:
    """Join the free-text report and the SCP descriptions with ``|`` (see module doc)."""
    parts: list[str] = []
    text = (report or "").strip()
    if text:
        parts.append(text)
    for code in scp_codes:
        desc = descriptions.get(str(code).strip(), str(code).strip())
        if desc and desc not in parts:
            parts.append(desc)
    return "|".join(parts)


def _float_or_none(value: str) -> float | None:
    value = (value or "").strip()
    if value == "":
        return None
    out = float(value)  # ValueError for garbage: the caller turns it into a skip reason
    return None if math.isnan(out) else out


def _row_to_ref(row: dict[str, str], root: Path, descriptions: dict[str, str]) -> RecordRef:
    ecg_id_raw = (row.get("ecg_id") or "").strip()
    ref = RecordRef(record_id=ecg_id_raw, subject_id="", path="", source=SOURCE)
    problems: list[str] = []
    try:
        ref.record_id = str(int(float(ecg_id_raw)))
    except ValueError:
        problems.append(f"ecg_id {ecg_id_raw!r} is not an integer")

    pid = (row.get("patient_id") or "").strip()
    try:
        ref.subject_id = str(int(float(pid)))  # stored as "15709.0" in the CSV
    except ValueError:
        problems.append(f"patient_id {pid!r} is not a number")

    fname = (row.get("filename_hr") or "").strip()
    if not fname:
        problems.append("filename_hr is empty")
    elif Path(fname).is_absolute() or ".." in Path(fname).parts:
        problems.append(f"filename_hr {fname!r} is not a path inside the dataset")
    else:
        ref.path = str(root / fname)

    try:
        codes = ast.literal_eval(row.get("scp_codes") or "{}")
        if not isinstance(codes, dict):
            raise ValueError("not a dict")
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        problems.append(f"scp_codes {row.get('scp_codes')!r} is not a dict literal ({exc})")
        codes = {}
    ref.report = ptbxl_report(row.get("report", ""), codes, descriptions)

    try:
        age = _float_or_none(row.get("age", ""))
        if age is not None and age == PTBXL_AGE_CODED_OVER_89:
            age = 90.0
            ref.extra["age_note"] = "PTB-XL codes age > 89 as 300; set to 90"
        ref.age = age
    except ValueError:
        problems.append(f"age {row.get('age')!r} is not a number")

    sex_raw = (row.get("sex") or "").strip()
    try:
        ref.sex = {0: "M", 1: "F"}.get(int(float(sex_raw))) if sex_raw else None
    except ValueError:
        problems.append(f"sex {sex_raw!r} is not 0/1")

    fold = (row.get("strat_fold") or "").strip()
    if fold:
        ref.extra["strat_fold"] = fold
    ref.extra["scp_codes"] = dict(codes)
    if problems:
        ref.skip_reason = "malformed ptbxl_database.csv row: " + "; ".join(problems)
    return ref


def read_ptbxl(root: str | Path) -> list[RecordRef]:
    """All PTB-XL records as RecordRefs, ordered by ``ecg_id`` (malformed rows last)."""
    root = Path(root)
    _check_layout(root)
    descriptions = _scp_descriptions(root)
    df, bad_lines = _read_csv_keeping_bad_lines(root / "ptbxl_database.csv")
    required = {"ecg_id", "patient_id", "filename_hr", "report", "scp_codes", "age", "sex"}
    if not required.issubset(df.columns):
        raise DatasetLayoutError(
            root / "ptbxl_database.csv", f"columns {sorted(required)}", f"missing {sorted(required - set(df.columns))}"
        )
    refs = [_row_to_ref(row, root, descriptions) for row in df.to_dict("records")]
    for n, fields in enumerate(bad_lines):
        rid = fields[0].strip() if fields and fields[0].strip() else f"bad-line-{n}"
        refs.append(
            RecordRef(
                record_id=rid,
                subject_id="",
                path="",
                source=SOURCE,
                skip_reason=f"malformed ptbxl_database.csv row: {len(fields)} fields, expected {len(df.columns)}",
            )
        )

    def order(ref: RecordRef) -> tuple[int, int, str]:
        try:
            return (0, int(ref.record_id), "")
        except ValueError:
            return (1, 0, ref.record_id)

    refs.sort(key=order)
    n_age = sum("age_note" in r.extra for r in refs)
    if n_age:
        log.info("%s: %d record(s) with PTB-XL's age code 300 (> 89 years) set to 90", root, n_age)
    return refs
