"""Any folder of WFDB records (``*.hea`` found recursively) -> RecordRefs.

Metadata come from the header comments, read by :func:`.headers.parse_header_comments` following the
conventions of the public 12-lead databases (LUDB, INCART, PTB Diagnostic, the PhysioNet/CinC Challenge, this
package's own headers; the table is :data:`.headers.HEADER_CONVENTIONS`), or from the keys the user names
(``field_map``; ``prepare --header-field age=KEY``):

* age, sex, report statements and the subject id where the database gives one;
* numeric diagnosis codes - Challenge 2020/2021 headers carry SNOMED CT ids, ``#Dx: 426783006,164865005`` -
  are *codes*, never text: they are turned into statements through a code mapping (``code_map``, a CSV of
  ``code,text``; the Challenge's ``dx_mapping_*.csv`` with ``SNOMEDCTCode``/``SNOMED CT Code`` and ``Dx``
  columns is accepted as is), in header order; a record with a code the mapping lacks (or any code when no
  mapping is given) is skipped with that reason (kind ``dx_codes``);
* the subject: a header field (``subject_id``/``patient``/``patient_id``, INCART's ``patient N`` line);
  otherwise the deepest folder named like a patient (``patient001``, ``p10000032``, ``subject_7``; see
  :data:`.subjects.PATIENT_FOLDER`), otherwise the record itself (LUDB, and PTB-XL ``records500/00000/`` and
  Challenge ``training/<source>/g1/`` folders, which are batches, not patients). Other rules: :mod:`.subjects`;
* a record whose age or sex is unknown carries, in ``extra["demographics_missing"]``, why (no key read gives it,
  the value it gives, or a mapped key that is absent) and how to name the key; the skip reason says so;
* an age written ``>89`` (de-identified) becomes 90, and ``extra["age_note"]`` says so.

Every ``key: value`` comment is also kept in ``extra["header_fields"]`` (lower-case keys, angle brackets
removed), for the ``header:KEY`` subject rule.

Multi-segment records: a master header (``name/n_segments``) is one record; the segment and
layout headers it names are not listed on their own.

``record_id`` is the record path relative to the root, without extension, ``/``-separated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .headers import keys_read, parse_header_comments, parse_header_field_map
from .records import DatasetLayoutError, RecordRef
from .subjects import PATIENT_FOLDER
from .wfdb_io import is_multisegment

__all__ = ["read_folder", "parse_header_comments", "load_code_map", "FOLDER_LAYOUT"]

log = logging.getLogger(__name__)

FOLDER_LAYOUT = "a folder containing WFDB records (<name>.hea + signal files), searched recursively"
SOURCE = "wfdb"

_CODE_COLUMNS = ("code", "snomedctcode", "snomed ct code", "snomed_ct_code", "snomed", "dx_code")
_TEXT_COLUMNS = ("text", "statement", "description", "dx", "diagnosis")


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


def _demographics_missing(meta: dict, field_map: Mapping[str, object]) -> str:
    """Why age and/or sex are unknown, and how to name the header key that holds them."""
    missing = [f for f in ("age", "sex") if meta.get(f) is None]
    why = meta.get("why") or {}
    parts = []
    for f in missing:
        if f in why:
            parts.append(why[f])
        else:
            parts.append(f"no header comment gives {f} (keys read: {', '.join(repr(k + ':') for k in keys_read(f))})")
    unnamed = [f for f in missing if f not in why]  # a key given with an unreadable value needs no map
    advice = f": name the header key with prepare --header-field {unnamed[0]}=KEY" if unnamed else ""
    return f"{' and '.join(missing)} unknown ({'; '.join(parts)}); conditioning needs age and sex{advice}"


def read_folder(
    root: str | Path,
    source: str = SOURCE,
    code_map: str | Path | dict[str, str] | None = None,
    header_fields: Sequence[str] | Mapping[str, object] | None = None,
) -> list[RecordRef]:
    """RecordRefs for every record under ``root`` (see module doc), ordered by relative path.

    Args:
        root: the folder; searched recursively for ``*.hea``.
        source: the ``source`` value of the refs.
        code_map: path of a code -> text CSV (see :func:`load_code_map`) or the dict itself.
        header_fields: header keys holding age/sex/report, as ``["age=KEY", ...]`` or a mapping
            (:func:`.headers.parse_header_field_map`); the fields named come from those keys only.

    Raises:
        DatasetLayoutError: ``root`` is not a directory or holds no ``.hea`` file.
        ValueError: a malformed ``header_fields``.
    """
    field_map = parse_header_field_map(header_fields)
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
        meta = parse_header_comments(list(header.comments or []), field_map)
        ref.age = meta.get("age")  # type: ignore[assignment]
        ref.sex = meta.get("sex")  # type: ignore[assignment]
        ref.report = str(meta.get("report", ""))
        ref.rr_interval_ms = meta.get("rr_interval_ms")  # type: ignore[assignment]
        ref.extra["header_fields"] = meta["fields"]
        if meta.get("age_note"):
            ref.extra["age_note"] = meta["age_note"]
        if ref.age is None or ref.sex is None:
            ref.extra["demographics_missing"] = _demographics_missing(meta, field_map)
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
