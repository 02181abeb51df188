"""Any folder of WFDB records (``*.hea`` found recursively) -> RecordRefs.

Metadata come from the header comments when they are present. Recognised ``key: value``
comments (keys case-insensitive; a leading ``#`` is allowed):

* ``age``, ``sex``/``gender`` (``male``/``female``/``M``/``F``);
* ``report`` / ``diagnosis`` / ``dx`` / ``statement`` lines: their values are the report
  statements (a value may hold several statements separated by ``|``; values written by
  :func:`~diffusets_core.data.wfdb_io.header_comments` are percent-decoded). Values that are
  numeric diagnosis codes - Challenge 2020/2021 headers carry SNOMED CT ids, ``#Dx:
  426783006,164865005`` - are *codes*, never text: they are turned into statements through a
  code mapping (``code_map``, a CSV of ``code,text``; the Challenge's ``dx_mapping_*.csv``
  with ``SNOMEDCTCode``/``SNOMED CT Code`` and ``Dx`` columns is accepted as is), in header
  order; a record with a code the mapping lacks (or any code when no mapping is given) is
  skipped with that reason (kind ``dx_codes``);
* otherwise the PTB Diagnostic ECG Database clinical fields build the report, in header
  order: ``Reason for admission`` (value), ``Acute infarction (localization)`` and
  ``Former infarction (localization)`` (``"Acute infarction: <site>"``),
  ``Additional diagnoses`` (value). Values ``n/a``, ``no``, ``none``, ``unknown`` are
  left out;
* ``subject_id`` / ``patient`` / ``patient_id`` gives the subject; otherwise the deepest
  folder named like a patient (``patient001``, ``p10000032``, ``subject_7``; see
  :data:`.subjects.PATIENT_FOLDER`), otherwise the record itself (PTB-XL ``records500/00000/``
  and Challenge ``training/<source>/g1/`` folders are batches, not patients). Other rules:
  :mod:`.subjects`;
* ``rr_interval`` (ms).

Every ``key: value`` comment is also kept in ``extra["header_fields"]`` (lower-case keys), for
the ``header:KEY`` subject rule.

Multi-segment records: a master header (``name/n_segments``) is one record; the segment and
layout headers it names are not listed on their own.

``record_id`` is the record path relative to the root, without extension, ``/``-separated.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pandas as pd

from .records import DatasetLayoutError, RecordRef, normalise_sex
from .subjects import PATIENT_FOLDER
from .wfdb_io import decode_comment_value, is_multisegment

__all__ = ["read_folder", "parse_header_comments", "load_code_map", "FOLDER_LAYOUT"]

log = logging.getLogger(__name__)

FOLDER_LAYOUT = "a folder containing WFDB records (<name>.hea + signal files), searched recursively"
SOURCE = "wfdb"

_KV = re.compile(r"^\s*#?\s*([^:]+?)\s*:\s*(.*?)\s*$")
_REPORT_KEYS = {"report", "diagnosis", "diagnoses", "dx", "statement", "statements"}
_SUBJECT_KEYS = {"subject_id", "subject", "patient", "patient_id"}
_EMPTY_VALUES = {"", "n/a", "na", "no", "none", "unknown", "nan", "?"}
_CODE = re.compile(r"^\d+$")
# PTB Diagnostic clinical fields that describe the ECG's diagnosis, and how to phrase them.
_PTB_DIAGNOSTIC_FIELDS = {
    "reason for admission": "{value}",
    "acute infarction (localization)": "Acute infarction: {value}",
    "former infarction (localization)": "Former infarction: {value}",
    "additional diagnoses": "{value}",
}
_CODE_COLUMNS = ("code", "snomedctcode", "snomed ct code", "snomed_ct_code", "snomed", "dx_code")
_TEXT_COLUMNS = ("text", "statement", "description", "dx", "diagnosis")


def _float_or_none(value: str) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def parse_header_comments(comments: list[str]) -> dict[str, object]:
    """Extract metadata from WFDB header comments.

    Returns a dict with ``report`` (text statements joined with ``|``), ``dx_codes`` (list of
    numeric codes in header order, not yet text), and when present ``age``, ``sex``,
    ``subject_id``, ``rr_interval_ms``; ``fields`` holds every ``key: value`` (lower-case keys).
    """
    out: dict[str, object] = {}
    explicit: list[str] = []
    codes: list[str] = []
    ptb: list[str] = []
    fields: dict[str, str] = {}
    for line in comments:
        m = _KV.match(line)
        if not m:
            continue
        key, value = m.group(1).strip().lower(), m.group(2).strip()
        fields.setdefault(key, value)
        if key == "age" and "age" not in out:
            out["age"] = _float_or_none(value)
        elif key in ("sex", "gender") and "sex" not in out:
            out["sex"] = normalise_sex(value)
        elif key in _REPORT_KEYS:
            for part in value.split("|"):
                tokens = [t.strip() for t in re.split(r"[,;]", part)]
                if tokens and all(_CODE.match(t) for t in tokens if t) and any(tokens):
                    codes.extend(t for t in tokens if t)
                    continue
                text = decode_comment_value(part).strip()
                if text.lower() not in _EMPTY_VALUES:
                    explicit.append(text)
        elif key in _PTB_DIAGNOSTIC_FIELDS and value.lower() not in _EMPTY_VALUES:
            ptb.append(_PTB_DIAGNOSTIC_FIELDS[key].format(value=value))
        elif key in _SUBJECT_KEYS and value and "subject_id" not in out:
            out["subject_id"] = value
        elif key in ("rr_interval", "rr_interval_ms", "rr"):
            out["rr_interval_ms"] = _float_or_none(value)
    out["report"] = "|".join(explicit or ([] if codes else ptb))
    out["dx_codes"] = codes
    out["fields"] = fields
    return out


def load_code_map(path: str | Path) -> dict[str, str]:
    """``code -> statement text`` from a CSV.

    Columns: ``code`` and ``text`` (also accepted: the PhysioNet/CinC Challenge 2020/2021
    ``dx_mapping_scored.csv`` / ``dx_mapping_unscored.csv`` layout, ``SNOMEDCTCode`` or ``SNOMED CT
    Code`` and ``Dx``). Codes and texts are stripped; empty texts are ignored.

    Raises:
        FileNotFoundError: the file does not exist. ValueError: no code or text column, or a
        code mapped to two different texts.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: code mapping not found (expected a CSV with columns code,text)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {c.strip().lower(): c for c in df.columns}
    code_col = next((cols[c] for c in _CODE_COLUMNS if c in cols), None)
    text_col = next((cols[c] for c in _TEXT_COLUMNS if c in cols), None)
    if code_col is None or text_col is None:
        raise ValueError(
            f"{path}: expected columns code,text (or the Challenge's SNOMEDCTCode,Dx); found {list(df.columns)}"
        )
    out: dict[str, str] = {}
    for line, (code, text) in enumerate(zip(df[code_col], df[text_col]), start=2):
        code, text = code.strip(), text.strip()
        if not code or not text:
            continue
        if code in out and out[code] != text:
            raise ValueError(f"{path} line {line}: code {code} mapped to {text!r} and before to {out[code]!r}")
        out[code] = text
    return out


def _auto_subject(rel: Path, record_id: str) -> tuple[str, str]:
    for part in reversed(rel.parts[:-1]):
        if PATIENT_FOLDER.match(part):
            return part, "auto: patient folder"
    return record_id, "auto: record (no patient folder or header field)"


def read_folder(
    root: str | Path, source: str = SOURCE, code_map: str | Path | dict[str, str] | None = None
) -> list[RecordRef]:
    """RecordRefs for every record under ``root`` (see module doc), ordered by relative path.

    Args:
        root: the folder; searched recursively for ``*.hea``.
        source: the ``source`` value of the refs.
        code_map: path of a code -> text CSV (see :func:`load_code_map`) or the dict itself.

    Raises:
        DatasetLayoutError: ``root`` is not a directory or holds no ``.hea`` file.
    """
    import wfdb  # local import keeps `import diffusets_core.data` light

    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(root, FOLDER_LAYOUT, "directory does not exist")
    headers = sorted(root.rglob("*.hea"), key=lambda p: p.relative_to(root).as_posix())
    if not headers:
        raise DatasetLayoutError(root, FOLDER_LAYOUT, "no .hea file found")
    codes_from = None
    if code_map is not None and not isinstance(code_map, dict):
        codes_from = str(Path(code_map).expanduser().resolve())
        code_map = load_code_map(code_map)

    parsed: dict[Path, object] = {}
    segments: set[Path] = set()
    for hea in headers:
        try:
            header = wfdb.rdheader(str(hea.with_suffix("")))
        except Exception as exc:
            parsed[hea] = exc
            continue
        parsed[hea] = header
        if is_multisegment(hea):
            segments.update(hea.parent / f"{s}.hea" for s in (header.seg_name or []) if s != "~")
    if segments:
        log.info(
            "%s: %d segment header(s) belong to multi-segment records and are read through them",
            root,
            len(segments & set(headers)),
        )

    refs: list[RecordRef] = []
    for hea in headers:
        if hea in segments:
            continue
        rel = hea.relative_to(root).with_suffix("")
        record_id = rel.as_posix()
        subject, subject_from = _auto_subject(rel, record_id)
        ref = RecordRef(record_id=record_id, subject_id=subject, path=str(hea.with_suffix("")), source=source)
        ref.extra["meta_from_header"] = True
        ref.extra["subject_from"] = subject_from
        header = parsed[hea]
        if isinstance(header, Exception):
            # read_record reports the precise error (first offending line); nothing else is known.
            ref.extra["header_error"] = str(header)
            refs.append(ref)
            continue
        meta = parse_header_comments(list(header.comments or []))
        ref.age = meta.get("age")  # type: ignore[assignment]
        ref.sex = meta.get("sex")  # type: ignore[assignment]
        ref.report = str(meta.get("report", ""))
        ref.rr_interval_ms = meta.get("rr_interval_ms")  # type: ignore[assignment]
        ref.extra["header_fields"] = meta["fields"]
        if meta.get("subject_id"):
            ref.subject_id = str(meta["subject_id"])
            ref.extra["subject_from"] = "auto: header field"
        codes = list(meta["dx_codes"])  # type: ignore[arg-type]
        if codes:
            ref.extra["dx_codes"] = codes
            if code_map is None:
                ref.skip_reason = (
                    f"header holds diagnosis codes {','.join(codes)} and no code mapping was given "
                    "(prepare --code-map CSV with columns code,text)"
                )
            else:
                unmapped = [c for c in codes if c not in code_map]
                if unmapped:
                    ref.skip_reason = (
                        f"diagnosis code(s) {','.join(unmapped)} not in the code mapping "
                        f"{codes_from or '(given as a dict)'}"
                    )
                else:
                    statements = [s for s in ref.report.split("|") if s]
                    for c in codes:
                        if code_map[c] not in statements:
                            statements.append(code_map[c])
                    ref.report = "|".join(statements)
            if ref.skip_reason:
                ref.extra["skip_kind"] = "dx_codes"
        refs.append(ref)
    return refs
