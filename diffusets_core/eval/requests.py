"""The kinds of request the benchmark sends the generator, side by side, each scored per finding class:

* ``seen`` (a) — the test records' own reports: training wordings (the wording bank's training part), findings
  in combinations the training split also has;
* ``reworded`` (b) — the same reports, every statement replaced by one of the bank's **held-out** wordings
  (never written into any record, never embedded for training): same findings, same patient, same seeds;
* ``combinations`` (c) — the cohort's held-out combinations of findings (``HELD_OUT_COMBINATIONS``, never built
  into any split): records made for them by the cohort's own synthesiser, interpreter and training wordings
  (:func:`~diffusets_core.data.cohort.build.make_combination_record`), so each request has a reference ECG that
  shows the combination — the judge's ceiling on them;
* ``paraphrased`` (d) — the test reports with each statement replaced by a wording of ``paraphrases.yaml``, a
  table written before any model saw it; only what remains of it once the bank's training wordings are removed
  counts (a statement without such a paraphrase keeps its wording).

Labels always come from the findings (never from the reworded text), so the four kinds are scored against the same
classes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.cohort import wordings as W
from ..data.cohort.findings import HELD_OUT_COMBINATIONS
from .paraphrase import remaining_paraphrases

__all__ = [
    "REQUEST_KINDS",
    "REQUEST_LABELS",
    "reworded_records",
    "paraphrased_records",
    "CombinationSet",
    "combination_set",
]

REQUEST_KINDS = ("seen", "reworded", "combinations", "paraphrased")
REQUEST_LABELS = {
    "seen": "(a) training wordings, seen combinations",
    "reworded": "(b) held-out wordings of the same reports",
    "combinations": "(c) held-out combinations of findings",
    "paraphrased": "(d) paraphrases.yaml (written before any model)",
}


def _canonical(statement: str) -> str | None:
    try:
        return W.statement_of_wording(statement)
    except KeyError:
        return None


def _reword(records: pd.DataFrame, choose) -> pd.DataFrame:
    """``records`` with each statement replaced by ``choose(statement, canonical)`` (None keeps it); adds
    ``original_report`` and ``reworded_share`` (the share of the record's statements replaced)."""
    reports, shares = [], []
    for r in records["report"].astype(str):
        items = [s.strip() for s in r.split("|") if s.strip()]
        out = [choose(s, _canonical(s)) for s in items]
        reports.append("|".join(o if o is not None else s for o, s in zip(out, items)))
        shares.append(sum(o is not None for o in out) / max(1, len(items)))
    return records.assign(original_report=records["report"].to_numpy(), report=reports, reworded_share=shares)


def reworded_records(records: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``records`` (column ``report``: statements joined by ``|``) with every statement that is a wording of the
    bank replaced by one of its canonical statement's **held-out** wordings, drawn with one
    ``numpy.random.default_rng([seed, 41])`` through the records in order. Adds ``original_report`` and
    ``reworded_share`` (the share of the record's statements reworded: 1.0 for every cohort record).

    Raises ValueError when no statement of any record is a bank wording (nothing would be reworded: a real
    dataset's machine statements are not in the bank)."""
    rng = np.random.default_rng([seed, 41])
    out = _reword(records, lambda s, canon: W.word_statement(canon, rng, "held_out") if canon else None)
    if len(records) and not out["reworded_share"].any():
        raise ValueError("reworded_records: no statement of these reports is a wording of the wording bank")
    return out


def paraphrased_records(records: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``records`` with each statement replaced by one of its canonical statement's remaining paraphrases
    (:func:`.paraphrase.remaining_paraphrases`: ``paraphrases.yaml`` without the bank's training wordings), drawn
    with one ``numpy.random.default_rng(seed)`` through the records in order; a statement without one keeps its
    wording. Adds ``original_report`` and ``reworded_share``."""
    table = remaining_paraphrases()
    rng = np.random.default_rng(seed)

    def choose(statement: str, canon: str | None) -> str | None:
        options = table.get(canon or statement)
        return options[int(rng.integers(len(options)))] if options else None

    return _reword(records, choose)


@dataclass
class CombinationSet:
    """Requests for the held-out combinations: ``conditions`` (report, age, sex, hr, findings, combination) and their
    reference ``signals`` (N, 12, L) float32 mV at the run's rate, row i for condition i — only the records whose
    report states the whole combination; ``built`` counts per combination the records attempted and kept (a
    combination the cohort's own rules cannot draw, e.g. a rate cap of one finding that excludes the other's
    rates, keeps none and is not requested)."""

    conditions: pd.DataFrame
    signals: np.ndarray
    built: pd.DataFrame


def _combination_row(args: tuple[int, int, tuple[str, ...]]) -> dict:
    from ..data.cohort.build import make_combination_record

    seed, index, combo = args
    return make_combination_record(seed, index, combo)


def combination_set(
    per_combination: int,
    seed: int,
    *,
    preprocess=None,
    combinations: tuple[tuple[str, ...], ...] = HELD_OUT_COMBINATIONS,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> CombinationSet:
    """``per_combination`` records for each held-out combination (seeded: record ``k`` of the whole set uses
    ``make_combination_record(seed, k, combo)``), preprocessed as the run's records were (``preprocess``: its
    :class:`~diffusets_core.data.preprocess.PreprocessConfig` or dict from ``data/prepare.json``; default
    ``PreprocessConfig()``): window, optional baseline filter, resampling to ``out_len``. The requested heart rate is the one the
    interpreter measured on the record (as the cohort's ``rr_interval``). ``workers`` > 1 builds in a process pool.
    With ``cache_dir`` the set is written there (``combinations.csv`` + ``combinations.npy``) and read back when
    it was built with the same arguments.

    Raises ValueError when ``per_combination`` < 1."""
    from scipy.signal import resample

    from ..data.cohort.morphology import FS
    from ..data.preprocess import PreprocessConfig, preprocess_signal
    from ..data.wfdb_io import ECGRecord
    from ..fileio import atomic_write_text, atomic_writer

    cfg = preprocess if isinstance(preprocess, PreprocessConfig) else PreprocessConfig.from_dict(preprocess or {})

    if per_combination < 1:
        raise ValueError(f"per_combination must be >= 1, got {per_combination}")
    key = f"{per_combination}|{seed}|{cfg.to_dict()}|{combinations}"
    if cache_dir is not None:
        cache = Path(cache_dir)
        csv, npy, tag = cache / "combinations.csv", cache / "combinations.npy", cache / "combinations.key"
        if tag.is_file() and tag.read_text() == key and csv.is_file() and npy.is_file():
            return _complete(pd.read_csv(csv, keep_default_na=False), np.load(npy))
    jobs = [
        (seed, k * per_combination + i, combo) for k, combo in enumerate(combinations) for i in range(per_combination)
    ]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            recs = list(ex.map(_combination_row, jobs, chunksize=8))
    else:
        recs = [_combination_row(j) for j in jobs]
    rows = []
    for (_, _, combo), rec in zip(jobs, recs):
        hr = rec["measurements"].get("hr")
        rows.append(
            {
                "report": "|".join(rec["statements"]),
                "age": rec["age"],
                "sex": rec["sex"],
                "hr": round(float(hr if hr and np.isfinite(hr) else rec["target_hr"]), 1),
                "findings": "|".join(rec["findings"]),
                "combination": "+".join(combo),
                "complete": bool(rec["complete"]),
            }
        )

    def prepared(sig: np.ndarray) -> np.ndarray:
        window = preprocess_signal(ECGRecord(sig.T.astype(np.float64), FS, sig.shape[1]), cfg)
        return resample(window, cfg.out_len, axis=0).T

    signals = np.stack([prepared(r["signal"]) for r in recs]).astype(np.float32)
    frame = pd.DataFrame(rows)
    if cache_dir is not None:
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_writer(npy) as tmp, open(tmp, "wb") as f:
            np.save(f, signals)
        atomic_write_text(csv, frame.to_csv(index=False))
        atomic_write_text(tag, key)
    return _complete(frame, signals)


def _complete(frame: pd.DataFrame, signals: np.ndarray) -> CombinationSet:
    ok = frame["complete"].astype(str).isin(["True", "true", "1"]).to_numpy()
    built = (
        frame.assign(kept=ok).groupby("combination", sort=False)["kept"].agg(attempted="size", kept="sum").reset_index()
    )
    return CombinationSet(frame[ok].reset_index(drop=True), signals[ok], built)
