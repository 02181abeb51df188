"""What the header comments of WFDB records say: the conventions of the public 12-lead databases, in one table.

WFDB headers carry patient data only as free comment lines, and every database writes them its own way.
:data:`HEADER_CONVENTIONS` lists, per database, the keys that hold the age, the sex, the report (diagnoses)
and the patient (subject) id, and where the subject comes from when the header names none.
:func:`parse_header_comments` reads the union of those keys, so a folder of any of these databases is read
without saying which one it is. A user whose records use other keys names them with a field map
(:func:`parse_header_field_map`; ``prepare --header-field age=KEY``), as ``--subject-id header:KEY`` names the
subject.

Comment syntax understood (``#`` is stripped by wfdb; keys are case-insensitive):

* ``key: value`` - one field a line (PTB Diagnostic, the Challenge, this package's own headers).
* ``<key>: value`` - a key in angle brackets (LUDB, INCART); several may share a line
  (``<age>: 65 <sex>: F <diagnoses> text``, the colon after ``<diagnoses>`` being optional). A table key written
  with brackets matches only the bracketed form.
* a block: a bracketed report key with an empty value (LUDB's ``<diagnoses>:``) takes every following comment
  line as one statement, verbatim (``Rhythm: Sinus rhythm.`` is a statement, not a key), until the next
  bracketed key or an empty comment line.
* lines without a key are read only in headers that use INCART's bracketed keys: ``patient N`` names the
  patient, any other line is a statement (INCART's findings line). Elsewhere they are ignored, as before.

Every field is also kept under its key with the brackets removed (``fields``), for ``--subject-id header:KEY``.
Sources: the PhysioNet pages of each database (``HeaderConvention.source``) and headers of the released files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .records import float_or_none, normalise_sex
from .wfdb_io import decode_comment_value

__all__ = [
    "HeaderConvention",
    "HEADER_CONVENTIONS",
    "HEADER_FIELDS",
    "parse_header_comments",
    "parse_header_field_map",
    "normalise_key",
    "keys_read",
]


@dataclass(frozen=True)
class HeaderConvention:
    """How one database writes patient data into its WFDB header comments.

    Keys are lower case, as written in the header (with their angle brackets, if any).
    """

    database: str
    source: str  # where the convention is documented
    example: tuple[str, ...]  # comment lines as wfdb returns them (without '#')
    example_reads: dict[str, object]  # what parse_header_comments gives for ``example`` (checked by the tests)
    age: tuple[str, ...] = ()  # age in years; ">89" (de-identified) is read as 90, with a note
    sex: tuple[str, ...] = ()  # male/female/M/F (records.normalise_sex)
    report: tuple[str, ...] = ()  # statements ('|'-separated) or numeric diagnosis codes (code map)
    report_block: tuple[str, ...] = ()  # written with an empty value; each following line is a statement
    report_fields: tuple[tuple[str, str], ...] = ()  # (key, phrasing): the report when no report key gives one
    unkeyed_statements: bool = False  # comment lines without a key are statements
    subject: tuple[str, ...] = ()  # keys holding the patient id
    subject_line: str = ""  # regular expression for an un-keyed line naming the patient (group 'subject')
    rr_interval: tuple[str, ...] = ()  # RR interval in ms
    subject_otherwise: str = ""  # where the subject comes from when the header names none


HEADER_CONVENTIONS: tuple[HeaderConvention, ...] = (
    HeaderConvention(
        database="LUDB",
        source="https://physionet.org/content/ludb/1.0.1/ (data/<n>.hea)",
        example=("<age>: 51", "<sex>: F", "<diagnoses>:", "Rhythm: Sinus rhythm.", "Left ventricular hypertrophy."),
        example_reads={"age": 51.0, "sex": "F", "report": "Rhythm: Sinus rhythm.|Left ventricular hypertrophy."},
        age=("<age>",),
        sex=("<sex>",),
        report_block=("<diagnoses>",),
        subject_otherwise="none in the header; its 200 records come from 200 people, so each record is its own subject",
    ),
    HeaderConvention(
        database="INCART",
        source="https://physionet.org/content/incartdb/1.0.0/ (I01.hea ... I75.hea)",
        example=("<age>: 65 <sex>: F <diagnoses> Coronary artery disease, arterial hypertension", "patient 1", "PVCs"),
        example_reads={
            "age": 65.0,
            "sex": "F",
            "report": "Coronary artery disease, arterial hypertension|PVCs",
            "subject_id": "1",
        },
        age=("<age>",),
        sex=("<sex>",),
        report=("<diagnoses>",),  # the patient's diagnoses (absent in about half the headers)
        unkeyed_statements=True,  # the findings of the (30-minute) record: "PVCs, noise"
        subject_line=r"^patient\s+(?P<subject>\d+)$",  # the Holter recording (1-32) the record was cut from
        subject_otherwise="the 'patient N' line",
    ),
    HeaderConvention(
        database="PTB Diagnostic",
        source="https://physionet.org/content/ptbdb/1.0.0/ (patientNNN/sNNNN_re.hea)",
        example=("age: 81", "sex: female", "Reason for admission: Myocardial infarction", "Smoker: no"),
        example_reads={"age": 81.0, "sex": "F", "report": "Myocardial infarction"},
        age=("age",),
        sex=("sex",),
        report_fields=(
            ("reason for admission", "{value}"),
            ("acute infarction (localization)", "Acute infarction: {value}"),
            ("former infarction (localization)", "Former infarction: {value}"),
            ("additional diagnoses", "{value}"),
        ),
        subject_otherwise="the patientNNN folder",
    ),
    HeaderConvention(
        database="PhysioNet/CinC Challenge 2020/2021",
        source="https://physionet.org/content/challenge-2021/1.0.3/ (training/<source>/g<k>/<record>.hea)",
        example=("Age: 74", "Sex: Male", "Dx: 426783006,164865005", "Rx: Unknown", "Hx: Unknown", "Sx: Unknown"),
        example_reads={"age": 74.0, "sex": "M", "report": "", "dx_codes": ["426783006", "164865005"]},
        age=("age",),
        sex=("sex",),
        report=("dx",),  # SNOMED CT codes: turned into text by a code map (prepare --code-map)
        subject_otherwise="none in the header (g<k> folders are batches): each record is its own subject",
    ),
    HeaderConvention(
        database="MIMIC-IV-ECG",
        source="https://physionet.org/content/mimic-iv-ecg/1.0/ (files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.hea)",
        example=(),
        example_reads={"age": None, "sex": None, "report": ""},
        subject_otherwise="the pNNNNNNNN folder; the headers hold no comments: read it with --source mimic, "
        "which takes reports and demographics from its tables",
    ),
    HeaderConvention(
        database="PTB-XL",
        source="https://physionet.org/content/ptb-xl/1.0.3/ (records500/NNNNN/NNNNN_hr.hea)",
        example=(),
        example_reads={"age": None, "sex": None, "report": ""},
        subject_otherwise="none (records500/NNNNN folders are batches); the headers hold no comments: read it "
        "with --source ptbxl, which takes patient ids, reports and demographics from ptbxl_database.csv",
    ),
    HeaderConvention(
        database="diffusets and other key: value headers",
        source="diffusets_core.data.wfdb_io.header_comments (records this package writes)",
        example=("report: Sinus rhythm|Normal ECG", "age: 63", "sex: F", "hr: 115.0", "patient: 7"),
        example_reads={"age": 63.0, "sex": "F", "report": "Sinus rhythm|Normal ECG", "subject_id": "7"},
        age=("age",),
        sex=("sex", "gender"),
        report=("report", "diagnosis", "diagnoses", "dx", "statement", "statements"),
        subject=("subject_id", "subject", "patient", "patient_id"),
        rr_interval=("rr_interval", "rr_interval_ms", "rr"),
        subject_otherwise="a folder named like a patient (patient001, p10000032, subject_7), else the record",
    ),
)

#: fields a user may map to a header key (``prepare --header-field FIELD=KEY``)
HEADER_FIELDS = ("age", "sex", "report")


def _union(attr: str) -> frozenset[str]:
    return frozenset(k for c in HEADER_CONVENTIONS for k in getattr(c, attr))


_AGE_KEYS = _union("age")
_SEX_KEYS = _union("sex")
_REPORT_KEYS = _union("report") | _union("report_block")
_BLOCK_KEYS = _union("report_block")
_SUBJECT_KEYS = _union("subject")
_RR_KEYS = _union("rr_interval")
_REPORT_FIELDS = {k: phrase for c in HEADER_CONVENTIONS for k, phrase in c.report_fields}
# Un-keyed lines are read only in headers that use the bracketed keys of a convention with un-keyed rules:
# (those keys, the patient-line pattern or None, whether other un-keyed lines are statements).
_UNKEYED_RULES = [
    (
        frozenset(k for k in c.age + c.sex + c.report if k.startswith("<")),
        re.compile(c.subject_line, re.IGNORECASE) if c.subject_line else None,
        c.unkeyed_statements,
    )
    for c in HEADER_CONVENTIONS
    if c.subject_line or c.unkeyed_statements
]

_KV = re.compile(r"^([^:]+?)\s*:\s*(.*?)$")
_BRACKET_KEY = re.compile(r"<\s*([A-Za-z][\w ]*?)\s*>\s*:?\s*")
_EMPTY_VALUES = {"", "n/a", "na", "no", "none", "unknown", "nan", "?"}
_CODE = re.compile(r"^\d+$")
_AGE_ABOVE = re.compile(r"^>\s*(\d+(?:\.\d+)?)$")  # de-identified ages: ">89"


def normalise_key(key: str) -> str:
    """A header key as stored in ``fields``: lower case, angle brackets and repeated blanks removed."""
    return " ".join(str(key).strip().strip("<>").lower().split())


def keys_read(field_name: str) -> list[str]:
    """The header keys (as written) that give ``field_name`` (``age``/``sex``/``report``) by default."""
    keys = {"age": _AGE_KEYS, "sex": _SEX_KEYS, "report": _REPORT_KEYS | set(_REPORT_FIELDS)}[field_name]
    return sorted(keys, key=lambda k: (k.startswith("<"), k))


@dataclass
class _Entry:
    key: str | None  # as written, lower case, brackets kept; None for a line without a key
    value: str
    statements: list[str] | None = None  # the lines of a block
    bracketed: bool = False


def _entries(comments: Sequence[str]) -> list[_Entry]:
    out: list[_Entry] = []
    block: _Entry | None = None
    for raw in comments:
        line = str(raw).strip()
        if line.startswith("#"):
            line = line[1:].strip()
        if _BRACKET_KEY.match(line):
            block = None
            tokens = list(_BRACKET_KEY.finditer(line))
            for i, tok in enumerate(tokens):
                end = tokens[i + 1].start() if i + 1 < len(tokens) else len(line)
                entry = _Entry(f"<{' '.join(tok.group(1).lower().split())}>", line[tok.end() : end].strip(), None, True)
                if entry.key in _BLOCK_KEYS and not entry.value:
                    entry.statements = []
                    block = entry
                out.append(entry)
            continue
        if block is not None:
            if not line:
                block = None
            else:
                block.statements.append(line)  # type: ignore[union-attr]
            continue
        m = _KV.match(line)
        if m:
            out.append(_Entry(" ".join(m.group(1).lower().split()), m.group(2).strip()))
        elif line:
            out.append(_Entry(None, line))
    return out


def _parse_age(value: str) -> tuple[float | None, str]:
    """(age, note) from a header value; None when it is not a number of years."""
    text = value.strip()
    m = _AGE_ABOVE.match(text)
    if m:
        age = math.floor(float(m.group(1))) + 1.0
        return age, f"header gives age {text!r} (de-identified); set to {age:g}"
    return float_or_none(text), ""


def _statements(entry: _Entry, decode: bool) -> tuple[list[str], list[str]]:
    """(text statements, numeric codes) of a report entry."""
    parts = entry.statements if entry.statements is not None else entry.value.split("|")
    texts: list[str] = []
    codes: list[str] = []
    for part in parts:
        for piece in part.split("|"):
            tokens = [t.strip() for t in re.split(r"[,;]", piece)]
            if any(tokens) and all(_CODE.match(t) for t in tokens if t):
                codes.extend(t for t in tokens if t)
                continue
            text = (decode_comment_value(piece) if decode else piece).strip()
            if text.lower() not in _EMPTY_VALUES:
                texts.append(text)
    return texts, codes


def parse_header_field_map(spec: Sequence[str] | Mapping[str, object] | None) -> dict[str, object]:
    """Parse a user's header field map: ``["age=KEY", "sex=KEY", "report=KEY", ...]`` or a mapping.

    Keys are normalised (:func:`normalise_key`: ``<Age>`` -> ``age``). ``report`` may be given several times
    (statements are taken from those keys, in header order); ``age`` and ``sex`` once each.

    Returns:
        ``{"age": key, "sex": key, "report": (key, ...)}`` with only the fields given.

    Raises:
        ValueError: a spec that is not ``FIELD=KEY`` with FIELD one of :data:`HEADER_FIELDS`, an empty key,
            or age/sex given twice.
    """
    if spec is None:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(spec, Mapping):
        for f, k in spec.items():
            for key in [k] if isinstance(k, str) else list(k):  # type: ignore[call-overload]
                pairs.append((str(f), str(key)))
    else:
        for item in spec:
            f, sep, k = str(item).partition("=")
            if not sep:
                raise ValueError(
                    f"header field map {item!r}: expected FIELD=KEY with FIELD one of {', '.join(HEADER_FIELDS)}"
                )
            pairs.append((f, k))
    out: dict[str, object] = {}
    for f, k in pairs:
        f, key = f.strip().lower(), normalise_key(k)
        if f not in HEADER_FIELDS or not key:
            raise ValueError(
                f"header field map '{f}={k}': expected FIELD=KEY with FIELD one of {', '.join(HEADER_FIELDS)} "
                "and KEY a header comment key"
            )
        if f == "report":
            out["report"] = (*out.get("report", ()), key)  # type: ignore[misc]
        elif f in out:
            raise ValueError(f"header field map: {f} given twice ({out[f]!r} and {key!r})")
        else:
            out[f] = key
    return out


def parse_header_comments(comments: Sequence[str], field_map: Mapping[str, object] | None = None) -> dict[str, object]:
    """Extract metadata from WFDB header comments (conventions: :data:`HEADER_CONVENTIONS`).

    Args:
        comments: the comment lines (``wfdb`` ``Record.comments``; a leading ``#`` is allowed).
        field_map: from :func:`parse_header_field_map`: the fields it names come from those keys only.

    Returns:
        dict with ``report`` (text statements joined with ``|``), ``dx_codes`` (numeric codes in header
        order, not yet text), ``fields`` (every ``key: value`` under :func:`normalise_key`; a block's
        statements joined with ``|``), ``why`` (``age``/``sex`` -> why it is unknown, when the header gives
        an unusable value or lacks a mapped key) and, when present, ``age``, ``age_note``,
        ``sex``, ``subject_id``, ``rr_interval_ms``.

    The report: the statements of every report key (and block, and INCART's un-keyed lines) in header order;
    else, when no numeric codes were found, PTB Diagnostic's clinical fields phrased as in the table. Empty
    values (``n/a``, ``no``, ``none``, ``unknown``) are left out.
    """
    field_map = dict(field_map or {})
    entries = _entries(comments)
    fields: dict[str, str] = {}
    for e in entries:
        if e.key is not None:
            fields.setdefault(normalise_key(e.key), "|".join(e.statements) if e.statements is not None else e.value)
    # un-keyed lines: read only in headers that use the bracketed keys of a convention that has un-keyed rules
    used_keys = {e.key for e in entries if e.key}
    rules = [(rx, stmts) for keys, rx, stmts in _UNKEYED_RULES if keys & used_keys]
    patient_lines = [rx for rx, _ in rules if rx is not None]
    unkeyed_statements = any(stmts for _, stmts in rules) and "report" not in field_map

    out: dict[str, object] = {}
    why: dict[str, str] = {}
    explicit: list[str] = []
    codes: list[str] = []
    ptb: list[str] = []

    def matches(entry: _Entry, field_name: str, default: frozenset[str]) -> bool:
        """A mapped field comes from the user's keys only; otherwise from the table's."""
        if field_name in field_map:
            wanted = field_map[field_name]
            keys = (wanted,) if isinstance(wanted, str) else tuple(wanted)  # type: ignore[arg-type]
            return normalise_key(entry.key or "") in keys
        return entry.key in default

    for e in entries:
        if e.key is None:
            m = next((m for rx in patient_lines if (m := rx.match(e.value))), None)
            if m:
                fields.setdefault("patient", m.group("subject"))
                out.setdefault("subject_id", m.group("subject"))
            elif unkeyed_statements:
                explicit.append(e.value)
        elif matches(e, "age", _AGE_KEYS):
            if "age" not in out:
                age, note = _parse_age(e.value)
                out["age"] = age
                if note:
                    out["age_note"] = note
                if age is None:
                    why["age"] = f"header gives age {e.value!r}"
        elif matches(e, "sex", _SEX_KEYS):
            if "sex" not in out:
                out["sex"] = normalise_sex(e.value)
                if out["sex"] is None:
                    why["sex"] = f"header gives sex {e.value!r}"
        elif matches(e, "report", _REPORT_KEYS):
            texts, found = _statements(e, decode=not e.bracketed)  # only this package's own values are escaped
            explicit.extend(texts)
            codes.extend(found)
        elif "report" not in field_map and e.key in _REPORT_FIELDS and e.value.lower() not in _EMPTY_VALUES:
            ptb.append(_REPORT_FIELDS[e.key].format(value=e.value))
        elif e.key in _SUBJECT_KEYS and e.value and "subject_id" not in out:
            out["subject_id"] = e.value
        elif e.key in _RR_KEYS:
            out["rr_interval_ms"] = float_or_none(e.value)
    for f in ("age", "sex"):
        if f in field_map and f not in out:
            why[f] = f"no '{field_map[f]}: ...' comment (header field map {f}={field_map[f]})"
    out["why"] = why
    out["report"] = "|".join(explicit or ([] if codes else ptb))
    out["dx_codes"] = codes
    out["fields"] = fields
    return out
