"""What the embedded cohort's world looks like (the data chapter's views of findings, combinations and wordings).

Inputs: the prepared records of a cohort run (``SignalStore(run).records()``: ``split``, ``report`` and the
structured ``findings`` column, finding ids joined by ``|``) and the cohort folder (``cohort_labels.csv``: the
``intended`` findings each record was built with). Every number is counted from those files; nothing is
assumed from the planner's settings.

*Morphology findings* below are the drawn findings that no sinus rate alone decides: everything but sinus rhythm,
sinus bradycardia and sinus tachycardia (and the derived Normal / Borderline / Abnormal statements).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ..overview import SPLITS
from . import wordings as W
from .findings import FINDINGS, HELD_OUT_COMBINATIONS, finding, reachable_pairs
from .labels import LABELS_FILE

__all__ = [
    "CohortWorld",
    "cohort_world",
    "morphology_ids",
    "finding_lists",
    "finding_split_table",
    "findings_per_record",
    "cooccurrence",
    "wording_summary",
    "held_out_check",
    "pair_coverage",
    "agreement_view",
]


def morphology_ids() -> tuple[str, ...]:
    """Drawn findings that are not a sinus rate statement, in report order."""
    return tuple(f.id for f in FINDINGS if f.drawn and not f.rate)


def finding_lists(column: pd.Series) -> pd.Series:
    """A ``findings``/``intended`` column ("a|b|c") as lists of ids (empty list for an empty cell)."""
    return column.fillna("").astype(str).apply(lambda s: [x for x in s.split("|") if x])


def _intended(records: pd.DataFrame, cohort_dir: str | os.PathLike) -> pd.Series:
    labels = pd.read_csv(Path(cohort_dir) / LABELS_FILE, dtype=str, keep_default_na=False).set_index("study_id")
    return finding_lists(labels["intended"].reindex(records["record_id"].astype(str)).fillna(""))


def finding_split_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per finding said in some report: its family, canonical statement and the records per split whose report
    says it (columns ``train``, ``val``, ``test``, ``all``), in report order. Raises KeyError without a
    ``findings`` column."""
    said = finding_lists(records["findings"])
    rows = []
    for f in FINDINGS:
        has = said.apply(lambda xs: f.id in xs)  # noqa: B023 (applied right here)
        if not has.any():
            continue
        row = {"finding": f.id, "family": f.family, "statement": f.statement}
        for s in SPLITS:
            row[s] = int((has & (records["split"] == s)).sum())
        row["all"] = int(has.sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("finding")


def findings_per_record(records: pd.DataFrame, cohort_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Records by their number of morphology findings (0, 1, 2, 3+): as said by the reports and, with
    ``cohort_dir``, as intended by the planner; with the share of records."""
    morph = set(morphology_ids())
    cols = {"said": finding_lists(records["findings"])}
    if cohort_dir is not None:
        cols["intended"] = _intended(records, cohort_dir)
    out = {}
    for name, lists in cols.items():
        k = lists.apply(lambda xs: min(3, sum(x in morph for x in xs)))
        counts = k.value_counts().reindex(range(4), fill_value=0)
        out[f"records ({name})"] = counts.to_numpy()
        out[f"share ({name})"] = np.round(counts.to_numpy() / max(1, len(lists)), 3)
    return pd.DataFrame(out, index=pd.Index(["0", "1", "2", "3+"], name="morphology findings"))


def cooccurrence(records: pd.DataFrame) -> pd.DataFrame:
    """Symmetric matrix of how many reports say both findings (morphology findings said at least once, report
    order); the diagonal holds each finding's own count."""
    said = finding_lists(records["findings"])
    morph = [f for f in morphology_ids() if said.apply(lambda xs: f in xs).any()]  # noqa: B023
    pos = {f: i for i, f in enumerate(morph)}
    m = np.zeros((len(morph), len(morph)), dtype=int)
    for xs in said:
        ids = sorted({pos[x] for x in xs if x in pos})
        for i in ids:
            m[i, i] += 1
        for i, j in combinations(ids, 2):
            m[i, j] += 1
            m[j, i] += 1
    return pd.DataFrame(m, index=morph, columns=morph)


def wording_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Distinct statements (wordings) used in the reports, distinct full reports, and per canonical statement the
    distinct wordings used; plus how many statements are a train wording of the bank (every one, by construction)
    and how many are held-out wordings (none). One column ``value``."""
    stmts = records["report"].fillna("").str.split("|").explode().str.strip()
    stmts = stmts[stmts != ""]
    train = {W.normalise(t) for st in W.statements() for t in W.wordings(st, "train")}
    held = {W.normalise(t) for st in W.statements() for t in W.wordings(st, "held_out")}
    norm = stmts.map(W.normalise)
    used_per_statement = (
        pd.DataFrame(
            {"norm": norm, "st": [W.statement_of_wording(s) if W.normalise(s) in train else "" for s in stmts]}
        )
        .query("st != ''")
        .groupby("st")["norm"]
        .nunique()
    )
    bank_train = [len(W.wordings(st, "train")) for st in W.statements()]
    bank_held = [len(W.wordings(st, "held_out")) for st in W.statements()]
    rows = {
        "canonical statements in the bank": len(bank_train),
        "bank wordings per statement, train part (min)": min(bank_train),
        "bank wordings per statement, held-out part (min)": min(bank_held),
        "distinct full reports": int(records["report"].nunique()),
        "distinct statement wordings used": int(norm.nunique()),
        "canonical statements said": int(len(used_per_statement)),
        "wordings used per statement (min)": int(used_per_statement.min()) if len(used_per_statement) else 0,
        "wordings used per statement (median)": float(used_per_statement.median()) if len(used_per_statement) else 0,
        "statements that are train wordings of the bank": int(norm.isin(train).sum()),
        "statements in all reports": int(len(norm)),
        "statements that are held-out wordings": int(norm.isin(held).sum()),
    }
    return pd.DataFrame({"value": rows})


def held_out_check(records: pd.DataFrame, cohort_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Per held-out combination: records per split whose report says all of its findings and (with
    ``cohort_dir``) records built with all of them. Every count is 0 when the cohort keeps them out."""
    said = finding_lists(records["findings"])
    intended = _intended(records, cohort_dir) if cohort_dir is not None else None
    rows = []
    for combo in HELD_OUT_COMBINATIONS:
        want = set(combo)
        row = {"combination": " + ".join(finding(f).statement for f in combo)}
        for s in SPLITS:
            row[f"said ({s})"] = int(said[records["split"] == s].apply(want.issubset).sum())
        if intended is not None:
            row["intended (all)"] = int(intended.apply(want.issubset).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("combination")


def pair_coverage(records: pd.DataFrame, cohort_dir: str | os.PathLike) -> pd.DataFrame:
    """Pairs of morphology findings the compatibility rules allow in one record (:func:`.findings.reachable_pairs`,
    held-out combinations left out): how many there are, how many some record was built with (intended) and how
    many some report says; ``missing`` lists the allowed pairs no record was built with. One column ``value``."""
    morph = set(morphology_ids())
    reach = {p for p in reachable_pairs() if p <= morph}

    def pairs(lists: pd.Series) -> set[frozenset[str]]:
        return {frozenset(p) for xs in lists for p in combinations(sorted(set(xs) & morph), 2)}

    built = pairs(_intended(records, cohort_dir))
    said = pairs(finding_lists(records["findings"]))
    missing = sorted(" + ".join(sorted(p)) for p in reach - built)
    rows = {
        "allowed pairs": len(reach),
        "allowed pairs built (intended)": len(reach & built),
        "allowed pairs said (reports)": len(reach & said),
        "missing": "; ".join(missing) if missing else "none",
    }
    return pd.DataFrame({"value": rows})


def agreement_view(cohort_dir: str | os.PathLike, target: float = 0.90, top: int = 3) -> pd.DataFrame:
    """The cohort's per-finding agreement (:func:`.build.agreement_table`) with ``meets target`` (agreement >=
    ``target``) and ``misread as``: on the records built with the finding whose report does not say it, the
    ``top`` most frequent findings said there but not intended (e.g. "rbbb 3"), "" where nothing else was said."""
    from .build import agreement_table

    table = agreement_table(cohort_dir)
    labels = pd.read_csv(Path(cohort_dir) / LABELS_FILE, dtype=str, keep_default_na=False)
    intended, said = finding_lists(labels["intended"]), finding_lists(labels["findings"])
    overall = {f.id for f in FINDINGS if f.family == "overall"}
    misread = {}
    for fid in table.index:
        c: Counter[str] = Counter()
        for it, sd in zip(intended, said):
            built = it == ["sinus_rhythm"] if fid == "normal_ecg" else fid in it
            if built and fid not in sd:
                c.update(x for x in sd if x not in it and x not in overall)
        misread[fid] = ", ".join(f"{k} {v}" for k, v in c.most_common(top))
    table["meets target"] = table["agreement"] >= target
    table["misread as"] = pd.Series(misread)
    return table


@dataclass
class CohortWorld:
    """The data chapter's views of a prepared cohort run (each a table described by the function that makes it)."""

    counts: pd.DataFrame  # finding_split_table
    per_record: pd.DataFrame  # findings_per_record (said and intended)
    cooccurrence: pd.DataFrame  # cooccurrence
    wording: pd.DataFrame  # wording_summary
    held_out: pd.DataFrame  # held_out_check (said per split, intended)
    pairs: pd.DataFrame  # pair_coverage
    agreement: pd.DataFrame  # agreement_view


def cohort_world(records: pd.DataFrame, cohort_dir: str | os.PathLike) -> CohortWorld:
    """Every view above for the prepared ``records`` of the cohort in ``cohort_dir``."""
    return CohortWorld(
        finding_split_table(records),
        findings_per_record(records, cohort_dir),
        cooccurrence(records),
        wording_summary(records),
        held_out_check(records, cohort_dir),
        pair_coverage(records, cohort_dir),
        agreement_view(cohort_dir),
    )
