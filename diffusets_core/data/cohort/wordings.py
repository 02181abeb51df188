"""How a statement is worded: the wording bank (``wordings.yaml`` beside this module) and its fixed split.

The interpreter decides *what* a report says (canonical statements, one per finding of :mod:`.findings`); the
bank decides *how*. For every canonical statement it holds at least six wordings: ``train`` wordings (the canonical
statement first) that generated reports may use, and ``held_out`` wordings (at least one abbreviation and one
reworded phrase) that no generated report of any split ever uses, so an evaluation can ask for them. The split is
data, fixed when the bank was written and never tuned to results. The bank is also the one place that maps a
wording back to its finding (:func:`finding_of`); records keep their findings as structured labels beside the
text, so labels never come from patterns on the text.

The wordings are modelled on public statement vocabularies; facts carry over, sentences are the bank's own:

* the SCP-ECG statement descriptions of PTB-XL's ``scp_statements.csv`` (Wagner P, Strodthoff N, Bousseljot RD,
  et al. PTB-XL, a large publicly available electrocardiography dataset. Sci Data 2020;7:154);
* the AHA/ACC/HRS standardised diagnostic statement list (Mason JW, Hancock EW, Gettes LS. Recommendations for
  the standardization and interpretation of the electrocardiogram, part II: electrocardiography diagnostic
  statement list. Circulation 2007;115:1325-1332), with its modifiers (possible, probable, consider);
* the machine statement style of MIMIC-IV-ECG (Gow B, Pollard T, Nathanson LA, et al. MIMIC-IV-ECG: Diagnostic
  Electrocardiogram Matched Subset, PhysioNet 2023): "ST elevation, consider inferior injury", "Inferior infarct,
  age undetermined", "LVH with secondary repolarization abnormality";
* common clinician abbreviations (SR, AFib, 1st deg AVB, LAFB, LVH w/ strain, TWI, STE).

Severity modifiers ("marked", "borderline") are used only where the finding's definition makes them true (the
overall "Borderline ECG"); hedges (possible, probable, consider) are used as machine reports use them. Lead-group
qualifiers follow the interpreter's groups (anterior V1-V4, inferior II/III/aVF, lateral I/aVL/V5-V6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from .findings import FINDINGS, finding, finding_of_statement

__all__ = [
    "BANK_FILE",
    "PARTS",
    "Wording",
    "normalise",
    "load_bank",
    "statements",
    "wordings",
    "word_statement",
    "word_statements",
    "word_report",
    "finding_of",
    "statement_of_wording",
]

BANK_FILE = Path(__file__).with_name("wordings.yaml")
PARTS = ("train", "held_out")
HELD_OUT_KINDS = ("abbreviation", "phrase")
_RANK = {f.id: i for i, f in enumerate(FINDINGS)}  # report order
MIN_WORDINGS = 6
MIN_HELD_OUT = 2


@dataclass(frozen=True)
class Wording:
    """One wording of the bank: its text, the canonical statement and finding it words, its part, and (held-out
    wordings) whether it is an abbreviation or a reworded phrase."""

    text: str
    statement: str
    finding: str
    part: str
    kind: str | None = None


def normalise(text: str) -> str:
    """The form wordings are compared in: case-folded, whitespace collapsed, trailing full stops dropped."""
    return re.sub(r"\s+", " ", str(text)).strip().rstrip(".").strip().casefold()


@dataclass(frozen=True)
class _Bank:
    by_statement: dict[str, dict[str, tuple[Wording, ...]]]
    by_text: dict[str, Wording]


def _parse(path: Path) -> _Bank:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("statements"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'statements' mapping")
    canonical = {s for f in FINDINGS for s in f.statements}
    missing = sorted(canonical - set(data["statements"]))
    extra = sorted(set(data["statements"]) - canonical)
    if missing or extra:
        raise ValueError(
            f"{path}: the bank must word exactly the catalogue's statements; missing {missing}, unknown {extra}"
        )
    by_statement: dict[str, dict[str, tuple[Wording, ...]]] = {}
    by_text: dict[str, Wording] = {}
    for st, entry in data["statements"].items():
        where = f"{path}: statement {st!r}"
        if not isinstance(entry, dict) or set(entry) != {"finding", "train", "held_out"}:
            raise ValueError(f"{where}: expected exactly the keys finding, train, held_out")
        fid = finding_of_statement(st)
        if entry["finding"] != fid:
            raise ValueError(f"{where}: finding {entry['finding']!r}, but the catalogue says {fid!r}")
        if not isinstance(entry["train"], list) or not all(isinstance(t, str) for t in entry["train"]):
            raise ValueError(f"{where}: 'train' must be a list of strings")
        held = entry["held_out"]
        if not isinstance(held, list) or not all(
            isinstance(h, dict) and set(h) == {"text", "kind"} and isinstance(h["text"], str) for h in held
        ):
            raise ValueError(f"{where}: 'held_out' must be a list of {{text, kind}} mappings")
        train = tuple(Wording(t, st, fid, "train") for t in entry["train"])
        held_out = tuple(Wording(h["text"], st, fid, "held_out", h["kind"]) for h in held)
        if not train or normalise(train[0].text) != normalise(st):
            raise ValueError(f"{where}: the first train wording must be the canonical statement itself")
        if len(train) + len(held_out) < MIN_WORDINGS:
            raise ValueError(f"{where}: {len(train) + len(held_out)} wordings, at least {MIN_WORDINGS} expected")
        kinds = {h.kind for h in held_out}
        if len(held_out) < MIN_HELD_OUT or not set(HELD_OUT_KINDS) <= kinds or not kinds <= set(HELD_OUT_KINDS):
            raise ValueError(
                f"{where}: at least {MIN_HELD_OUT} held-out wordings expected, covering the kinds "
                f"{HELD_OUT_KINDS} and no other (got {sorted(map(str, kinds))})"
            )
        for w in (*train, *held_out):
            key = normalise(w.text)
            if not key:
                raise ValueError(f"{where}: empty wording")
            if "|" in w.text:
                raise ValueError(f"{where}: wording {w.text!r} contains '|', the report separator")
            if key in by_text:
                other = by_text[key]
                raise ValueError(
                    f"{where}: wording {w.text!r} is also a wording of {other.statement!r} ({other.finding}); "
                    "each wording must map to exactly one statement and finding"
                )
            by_text[key] = w
        by_statement[st] = {"train": train, "held_out": held_out}
    return _Bank(by_statement, by_text)


@lru_cache(maxsize=4)
def load_bank(path: str | None = None) -> _Bank:
    """The parsed and checked bank (``wordings.yaml`` by default).

    Raises:
        ValueError: naming the file and statement, when the bank does not word exactly the catalogue's
            statements, a statement's finding differs from the catalogue, the first train wording is not the
            canonical statement, a statement has fewer than 6 wordings or fewer than 2 held-out ones (or they do
            not cover an abbreviation and a phrase), or a wording appears twice (ambiguous).
    """
    return _parse(Path(path) if path else BANK_FILE)


def _part(part: str) -> str:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return part


def _entry(statement: str) -> dict[str, tuple[Wording, ...]]:
    try:
        return load_bank().by_statement[statement]
    except KeyError:
        raise KeyError(f"{statement!r} is not a canonical statement of the wording bank ({BANK_FILE})") from None


def statements() -> tuple[str, ...]:
    """Every canonical statement the bank words (catalogue statements and their variants)."""
    return tuple(load_bank().by_statement)


def wordings(statement: str, part: str = "train") -> tuple[str, ...]:
    """The ``part`` (``"train"`` or ``"held_out"``) wordings of a canonical statement, in bank order."""
    return tuple(w.text for w in _entry(statement)[_part(part)])


def word_statement(statement: str, rng: np.random.Generator, part: str = "train") -> str:
    """One ``part`` wording of ``statement``, drawn uniformly with ``rng`` (one ``rng.integers`` call)."""
    options = wordings(statement, part)
    return options[int(rng.integers(len(options)))]


def _canonical(item: str) -> str:
    """A finding id or a canonical statement -> its canonical statement."""
    if item in load_bank().by_statement:
        return item
    try:
        return finding(item).statement
    except KeyError:
        raise KeyError(f"{item!r} is neither a finding id nor a canonical statement") from None


def word_statements(items: Iterable[str], rng: np.random.Generator, part: str = "train") -> list[str]:
    """Finding ids or canonical statements -> one ``part`` wording each, in report order (the catalogue's order;
    a stable sort, so statements the interpreter wrote keep its order)."""
    canon = sorted((_canonical(i) for i in items), key=lambda s: _RANK[finding_of_statement(s)])
    return [word_statement(s, rng, part) for s in canon]


def word_report(findings_or_statements: Iterable[str], rng: np.random.Generator, part: str = "train") -> str:
    """A report as the cohort writes it: the wordings of :func:`word_statements` joined by ``|``.

    Example: ``word_report(["rbbb", "sinus_rhythm", "abnormal_ecg"], rng)`` may give
    ``"Regular sinus rhythm|RBB block|Abnormal EKG"``."""
    return "|".join(word_statements(findings_or_statements, rng, part))


def _lookup(wording: str) -> Wording:
    try:
        return load_bank().by_text[normalise(wording)]
    except KeyError:
        raise KeyError(f"{wording!r} is not a wording of the bank ({BANK_FILE})") from None


def finding_of(wording: str) -> str:
    """The finding id a wording (train or held out; compared by :func:`normalise`) stands for.

    Raises KeyError for text that is not in the bank (labels never come from guessing at free text)."""
    return _lookup(wording).finding


def statement_of_wording(wording: str) -> str:
    """The canonical statement a wording of the bank stands for."""
    return _lookup(wording).statement
