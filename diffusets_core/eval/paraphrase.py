"""Reports as people write them: does the generator follow a report worded differently from its training
statements, or a combination of statements it never saw together?

The paraphrase table (``paraphrases.yaml`` beside this module) was written before any model was evaluated on it.
:func:`~.report.evaluate_run` (``paraphrase=True``) generates the test conditions with every statement replaced by
one of its paraphrases (seeded choice; source ``paraphrased`` beside ``model``) and the unseen combinations (each
with the age, sex and HR of test records; table ``unseen_combinations``). The requested classes always come from
the canonical statements, so the sets are scored against the same labels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["load_paraphrases", "remaining_paraphrases", "paraphrase_report", "unseen_combinations"]

_TABLE = Path(__file__).with_name("paraphrases.yaml")


@lru_cache(maxsize=1)
def _load() -> dict:
    data = yaml.safe_load(_TABLE.read_text())
    if not isinstance(data, dict) or "paraphrases" not in data:
        raise ValueError(f"{_TABLE}: expected a mapping with 'paraphrases' and 'unseen_combinations'")
    return data


def load_paraphrases() -> dict[str, list[str]]:
    """Statement -> its paraphrases (from ``paraphrases.yaml``)."""
    return {k: list(v) for k, v in _load()["paraphrases"].items()}


def remaining_paraphrases() -> dict[str, list[str]]:
    """:func:`load_paraphrases` without every paraphrase that is a **training** wording of the cohort's wording bank
    (compared by :func:`~diffusets_core.data.cohort.wordings.normalise`): what of the table a model trained on the
    cohort has never seen. Statements left without a paraphrase are dropped."""
    from ..data.cohort import wordings as W

    trained = {W.normalise(w) for s in W.statements() for w in W.wordings(s, "train")}
    out = {}
    for statement, options in load_paraphrases().items():
        keep = [p for p in options if W.normalise(p) not in trained]
        if keep:
            out[statement] = keep
    return out


def paraphrase_report(report: str, rng: np.random.Generator, table: dict[str, list[str]] | None = None) -> str:
    """``report`` (statements joined by ``|``) with each statement that has paraphrases replaced by one of
    them, chosen with ``rng``; statements without an entry are kept."""
    table = load_paraphrases() if table is None else table
    out = []
    for s in report.split("|"):
        options = table.get(s.strip())
        out.append(options[int(rng.integers(len(options)))] if options else s)
    return "|".join(out)


def _meaning(report: str) -> frozenset[str]:
    """A report as a set: of finding ids when every statement is a wording of the wording bank (a cohort report is
    worded many ways, so its strings cannot be compared), else of its statements."""
    from .classifiers import findings_of_text

    fids = findings_of_text(report)
    return frozenset(fids) if fids is not None else frozenset(s.strip() for s in str(report).split("|"))


def unseen_combinations(training_reports: Any) -> list[str]:
    """The table's combinations that no training report holds exactly: compared as sets of findings where the
    wording bank knows every statement (whatever their wording), else as sets of statements."""
    seen = {_meaning(r) for r in training_reports}
    return [c for c in _load().get("unseen_combinations", []) if _meaning(c) not in seen]
