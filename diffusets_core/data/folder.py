"""Any folder of WFDB records (``*.hea`` found recursively) -> RecordRefs.

Metadata come from the header comments when they are present. Recognised ``key: value``
comments (keys case-insensitive):

* ``age``, ``sex``/``gender`` (``male``/``female``/``M``/``F``);
* ``report`` / ``diagnosis`` / ``dx`` / ``statement`` lines: their values are the report
  statements (a value may itself hold several statements separated by ``|``);
* otherwise the PTB Diagnostic ECG Database clinical fields build the report, in header
  order: ``Reason for admission`` (value), ``Acute infarction (localization)`` and
  ``Former infarction (localization)`` (``"Acute infarction: <site>"``),
  ``Additional diagnoses`` (value). Values ``n/a``, ``no``, ``none``, ``unknown`` are
  left out;
* ``subject_id`` / ``patient`` / ``patient_id`` gives the subject; otherwise the first
  folder under the root (PTB Diagnostic ``patient001/``), otherwise the record id;
* ``rr_interval`` (ms).

``record_id`` is the record path relative to the root, without extension, ``/``-separated.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .records import DatasetLayoutError, RecordRef, normalise_sex

__all__ = ["read_folder", "parse_header_comments", "FOLDER_LAYOUT"]

FOLDER_LAYOUT = "a folder containing WFDB records (<name>.hea + signal files), searched recursively"
SOURCE = "wfdb"

_KV = re.compile(r"^\s*#?\s*([^:]+?)\s*:\s*(.*?)\s*$")
_REPORT_KEYS = {"report", "diagnosis", "diagnoses", "dx", "statement", "statements"}
_SUBJECT_KEYS = {"subject_id", "subject", "patient", "patient_id"}
_EMPTY_VALUES = {"", "n/a", "na", "no", "none", "unknown", "nan", "?"}
# PTB Diagnostic clinical fields that describe the ECG's diagnosis, and how to phrase them.
_PTB_DIAGNOSTIC_FIELDS = {
    "reason for admission": "{value}",
    "acute infarction (localization)": "Acute infarction: {value}",
    "former infarction (localization)": "Former infarction: {value}",
    "additional diagnoses": "{value}",
}


def _float_or_none(value: str) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def parse_header_comments(comments: list[str]) -> dict[str, object]:
    """Extract ``age``, ``sex``, ``report``, ``subject_id``, ``rr_interval_ms`` from comments."""
    out: dict[str, object] = {}
    explicit: list[str] = []
    ptb: list[str] = []
    for line in comments:
        m = _KV.match(line)
        if not m:
            continue
        key, value = m.group(1).strip().lower(), m.group(2).strip()
        if key == "age" and "age" not in out:
            out["age"] = _float_or_none(value)
        elif key in ("sex", "gender") and "sex" not in out:
            out["sex"] = normalise_sex(value)
        elif key in _REPORT_KEYS:
            explicit.extend(s.strip() for s in value.split("|") if s.strip().lower() not in _EMPTY_VALUES)
        elif key in _PTB_DIAGNOSTIC_FIELDS and value.lower() not in _EMPTY_VALUES:
            ptb.append(_PTB_DIAGNOSTIC_FIELDS[key].format(value=value))
        elif key in _SUBJECT_KEYS and value and "subject_id" not in out:
            out["subject_id"] = value
        elif key in ("rr_interval", "rr_interval_ms", "rr"):
            out["rr_interval_ms"] = _float_or_none(value)
    out["report"] = "|".join(explicit or ptb)
    return out


def read_folder(root: str | Path, source: str = SOURCE) -> list[RecordRef]:
    """RecordRefs for every ``*.hea`` under ``root``, ordered by relative path."""
    import wfdb

    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(root, FOLDER_LAYOUT, "directory does not exist")
    headers = sorted(root.rglob("*.hea"), key=lambda p: p.relative_to(root).as_posix())
    if not headers:
        raise DatasetLayoutError(root, FOLDER_LAYOUT, "no .hea file found")
    refs: list[RecordRef] = []
    for hea in headers:
        rel = hea.relative_to(root).with_suffix("")
        record_id = rel.as_posix()
        ref = RecordRef(record_id=record_id, subject_id=record_id, path=str(hea.with_suffix("")), source=source)
        if len(rel.parts) > 1:
            ref.subject_id = rel.parts[0]
        try:
            header = wfdb.rdheader(str(hea.with_suffix("")))
        except Exception as exc:
            # The signal reader reports the precise error; here only metadata are missing.
            ref.extra["header_error"] = str(exc)
            refs.append(ref)
            continue
        meta = parse_header_comments(list(header.comments or []))
        ref.age = meta.get("age")  # type: ignore[assignment]
        ref.sex = meta.get("sex")  # type: ignore[assignment]
        ref.report = str(meta.get("report", ""))
        ref.rr_interval_ms = meta.get("rr_interval_ms")  # type: ignore[assignment]
        if meta.get("subject_id"):
            ref.subject_id = str(meta["subject_id"])
        refs.append(ref)
    return refs
