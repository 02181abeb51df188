"""Where a record's patient (subject) id comes from, and checks that the split can work.

Subject-level splits (:mod:`.splits`) are only as good as the subject ids. MIMIC-IV-ECG and
PTB-XL carry them in their tables; a plain folder of WFDB records does not, so the user can
name the place (``prepare --subject-id SPEC``, profile ``data.subject_id``):

* ``auto`` (default): the reader's own rule. For a WFDB folder: a ``subject_id``/``patient``/
  ``patient_id`` header comment or INCART's ``patient N`` line (:data:`.headers.HEADER_CONVENTIONS`); else the deepest folder named like a patient (``patient001``
  as in PTB Diagnostic, ``p10000032`` as in MIMIC-IV-ECG's ``files/`` tree, ``subject_7``,
  ``sub-07``); else the record itself (PTB-XL ``records500/00000/00001_hr`` and Challenge
  ``training/<source>/g1/A0001`` trees hold one folder per *batch* of records, not per patient).
* ``record``: every record is its own subject.
* ``header:KEY``: the value of the ``KEY: value`` header comment (WFDB folders only; case and angle
  brackets ignored: ``header:patient`` also reads INCART's ``patient N`` line).
* ``path:REGEX``: :func:`re.search` on the record's path relative to the data directory,
  ``/``-separated, without extension; the named group ``subject``, else group 1, else the match.
* ``csv:FILE``: a CSV with columns ``record_id`` and ``subject_id``.

A record for which the rule finds no subject is skipped with that reason. Before any record
is read, :func:`check_subjects` refuses a subject count that cannot make a subject-level
split (fewer than 3 subjects for 3 or more records, or more than
:data:`MAX_RECORDS_PER_SUBJECT` records per subject on average: a folder-per-batch layout
read as folder-per-patient). MIMIC-IV-ECG has about 5 ECGs per subject and PTB-XL 1.2.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .headers import normalise_key
from .records import RecordRef

__all__ = [
    "SubjectRule",
    "SplitError",
    "NoUsableRecordsError",
    "apply_subject_rule",
    "check_subjects",
    "check_splits",
    "check_usable",
    "skip_summary",
    "MAX_RECORDS_PER_SUBJECT",
    "PATIENT_FOLDER",
]

log = logging.getLogger(__name__)

MAX_RECORDS_PER_SUBJECT = 50
#: folder names taken as a patient by the ``auto`` rule of the WFDB-folder reader
PATIENT_FOLDER = re.compile(r"^(?:patient|subject|pat|sub|p)[-_]?\d+$", re.IGNORECASE)
_HOW = (
    "name the patient id with --subject-id (profile data.subject_id): 'header:KEY', 'path:REGEX', "
    "'csv:FILE' (columns record_id,subject_id) or 'record' (each record its own subject)"
)


class SplitError(ValueError):
    """The subject ids cannot give a train/val/test split; the message says why and what to do."""


class NoUsableRecordsError(SplitError):
    """Every record was skipped; the message names the most common skip reasons."""


@dataclass(frozen=True)
class SubjectRule:
    """A parsed ``--subject-id`` specification (see the module docstring)."""

    kind: str  # auto | record | header | path | csv
    arg: str = ""

    @classmethod
    def parse(cls, spec: str | None) -> SubjectRule:
        """Parse ``auto``/``record``/``header:KEY``/``path:REGEX``/``csv:FILE``; ValueError otherwise."""
        spec = (spec or "auto").strip()
        if spec in ("auto", "record"):
            return cls(spec)
        kind, sep, arg = spec.partition(":")
        if not sep or kind not in ("header", "path", "csv") or not arg.strip():
            raise ValueError(
                f"subject id rule {spec!r}: expected 'auto', 'record', 'header:KEY', 'path:REGEX' or 'csv:FILE'"
            )
        if kind == "path":
            try:
                re.compile(arg)
            except re.error as exc:
                raise ValueError(f"subject id rule {spec!r}: invalid regular expression ({exc})") from exc
        return cls(kind, arg.strip() if kind != "path" else arg)

    def describe(self) -> str:
        return self.kind if not self.arg else f"{self.kind}:{self.arg}"


def _rel(ref: RecordRef, root: Path) -> str:
    p = Path(ref.path)
    for cand in (p, p.resolve()):
        try:
            return cand.relative_to(root).as_posix()
        except ValueError:
            continue
    return ref.record_id


def _skip(ref: RecordRef, message: str) -> None:
    if not ref.skip_reason:
        ref.skip_reason = message
        ref.extra["skip_kind"] = "subject_id"


def apply_subject_rule(
    refs: Sequence[RecordRef], spec: str | SubjectRule | None, root: str | Path, source: str = ""
) -> list[RecordRef]:
    """Set ``subject_id`` of every ref by ``spec`` (in place; returns ``refs`` as a list).

    Raises:
        ValueError: a malformed spec, ``header:`` for a source without WFDB header fields, or a
            ``csv:`` file that is missing or lacks the ``record_id``/``subject_id`` columns.
    """
    rule = spec if isinstance(spec, SubjectRule) else SubjectRule.parse(spec)
    refs = list(refs)
    root = Path(root)
    if rule.kind == "auto":
        return refs
    if rule.kind == "record":
        for r in refs:
            r.subject_id = r.record_id
    elif rule.kind == "header":
        if source not in ("", "wfdb"):
            raise ValueError(
                f"subject id rule {rule.describe()!r}: header fields are read for source 'wfdb' only, not {source!r}"
            )
        key = normalise_key(rule.arg)  # as the folder reader stores them: "<Age>" -> "age"
        for r in refs:
            value = (r.extra.get("header_fields") or {}).get(key, "")
            if value:
                r.subject_id = str(value)
            else:
                _skip(r, f"no '{rule.arg}: ...' comment in the header (subject id rule {rule.describe()!r})")
    elif rule.kind == "path":
        rx = re.compile(rule.arg)
        for r in refs:
            rel = _rel(r, root)
            m = rx.search(rel)
            if not m:
                _skip(r, f"record path {rel!r} does not match subject id pattern {rule.arg!r}")
                continue
            value = m.group("subject") if "subject" in rx.groupindex else (m.group(1) if rx.groups else m.group(0))
            if not value:
                _skip(r, f"subject id pattern {rule.arg!r} matched an empty subject in {rel!r}")
            else:
                r.subject_id = value
    elif rule.kind == "csv":
        path = Path(rule.arg).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: subject id table not found (expected a CSV with columns record_id,subject_id)"
            )
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in ("record_id", "subject_id") if c not in df.columns]
        if missing:
            raise ValueError(
                f"{path}: expected columns record_id,subject_id; missing {missing} (found {list(df.columns)})"
            )
        table = {rid.strip(): sid.strip() for rid, sid in zip(df["record_id"], df["subject_id"]) if rid.strip()}
        for r in refs:
            sid = table.get(r.record_id) or table.get(_rel(r, root))
            if sid:
                r.subject_id = sid
            else:
                _skip(r, f"record {r.record_id!r} has no subject_id in {path}")
    for r in refs:
        r.extra["subject_from"] = rule.describe()
    return refs


def _origin(refs: Sequence[RecordRef]) -> str:
    origins = Counter(str(r.extra.get("subject_from", "the dataset's table")) for r in refs)
    return ", ".join(f"{k} ({v})" for k, v in origins.most_common(3))


def check_subjects(refs: Sequence[RecordRef], *, max_records_per_subject: int = MAX_RECORDS_PER_SUBJECT) -> None:
    """Refuse subject ids that cannot make a subject-level split (before any record is read).

    Only refs without a ``skip_reason`` count. Raises :class:`SplitError` when 3 or more records
    come from fewer than 3 subjects, or when there are more than ``max_records_per_subject``
    records per subject on average (and more than 3 subjects' worth of records).
    """
    live = [r for r in refs if not r.skip_reason]
    n = len(live)
    counts = Counter(r.subject_id for r in live)
    k = len(counts)
    if n >= 3 and k < 3:
        raise SplitError(
            f"{n} records but only {k} subject id(s) {sorted(counts)[:3]} (taken from {_origin(live)}): "
            f"a subject-level split would leave validation and test empty; {_HOW}"
        )
    if k and n / k > max_records_per_subject:
        top = ", ".join(f"{s!r}: {c}" for s, c in counts.most_common(3))
        raise SplitError(
            f"{n} records from only {k} subject ids ({n / k:.0f} per subject; largest {top}; taken from "
            f"{_origin(live)}): implausible for 12-lead ECG datasets (MIMIC-IV-ECG ~5, PTB-XL ~1.2 per "
            f"subject) - the ids probably name folders of batches, not patients; {_HOW}"
        )


def skip_summary(reasons: Sequence[str], n_total: int, top: int = 3) -> str:
    """``"kind (count of n_total), kind (count), ..., e.g. <first reason of the commonest kind>"``.

    ``reasons`` are manifest reasons ``"<kind>: <message>"`` of the skipped records; the most common kinds
    come first (ties by name), at most ``top`` of them, then the number of other kinds.
    """
    kinds = Counter(r.split(":", 1)[0] for r in reasons)
    if not kinds:
        return "no record was skipped"
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    first_kind, first_count = ranked[0]
    parts = [f"{first_kind} ({first_count} of {n_total})"] + [f"{k} ({c})" for k, c in ranked[1:top]]
    if len(ranked) > top:
        parts.append(f"{len(ranked) - top} other kind(s)")
    example = next(r for r in reasons if r.split(":", 1)[0] == first_kind)
    return f"{', '.join(parts)}, e.g. {example}"


def check_usable(n_total: int, skipped_reasons: Sequence[str], where: str | Path = "") -> None:
    """Raise :class:`NoUsableRecordsError` when none of ``n_total`` records is usable (all are in ``skipped_reasons``).

    The message names the most common skip reasons with counts and an example (:func:`skip_summary`), and
    ``where`` the per-record reasons can be read.
    """
    if n_total - len(skipped_reasons) > 0:
        return
    if n_total == 0:
        raise NoUsableRecordsError("no record to prepare (the reader listed none, or n is 0)")
    raise NoUsableRecordsError(
        f"none of the {n_total} records is usable; skipped: {skip_summary(skipped_reasons, n_total)}"
        + (f" (every record's reason: {where})" if where else "")
    )


def check_splits(
    split_counts: dict[str, int], fractions: Sequence[float], n_subjects: int, skipped: Sequence[str] = ()
) -> None:
    """Refuse an empty split whose fraction is positive when 3 or more records are ok.

    ``skipped`` (manifest reasons of the skipped records) are summarised in the message (:func:`skip_summary`).
    """
    n = sum(split_counts.values())
    empty = [s for s, f in zip(("train", "val", "test"), fractions) if f > 0 and split_counts.get(s, 0) == 0]
    why = f"; skipped: {skip_summary(skipped, n + len(skipped))}" if skipped else ""
    if n >= 3 and empty:
        raise SplitError(
            f"{n} usable records from {n_subjects} subject(s) give an empty {' and '.join(empty)} split "
            f"(counts {split_counts}){why}; {_HOW}"
        )
    if empty:
        log.warning("only %d usable record(s): split(s) %s are empty%s", n, ", ".join(empty), why)
