"""Evaluating a twin on its run's test subjects: requests, counterparts, the three generated sets, the measures.

A *request* is a pair of one test subject's records, earlier -> later (:func:`~diffusets_core.data.pairs.run_pairs`,
chronologically adjacent records): generate the later record's report, at its patient values and heart rate, with
the earlier record as the reference. Three models answer every request with the same seeds and sampling settings:
``twin`` (with the reference), ``twin_without_reference`` (the same weights, the reference dropped) and
``reference_free`` (the base run's U-Net, which never saw a reference).

Personal consistency (:mod:`diffusets_core.eval.twin`) compares each generated ECG with the subject's real target
and with a *counterpart*: the same findings at the same heart rate, age and sex on another test subject's morphology
template (:func:`~diffusets_core.data.cohort.counterpart.make_counterpart_record`), so that the two ECGs compared
against differ only in whose heart they come from. Counterparts need the cohort's templates: a real dataset has no
such twin of a record, and this evaluation is the embedded cohort's.

Condition following and copying are read by the base run's benchmark judge (:mod:`diffusets_core.eval.twin_following`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.cohort.findings import statement_of
from ..data.pairs import run_pairs
from ..data.preprocess import resample_window
from ..data.store import SignalStore
from ..eval.twin import consistency_summary, personal_consistency
from ..eval.twin_following import following_tables, load_twin_judge
from ..fileio import atomic_writer

log = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "BOUNDS",
    "bound_sets",
    "TwinRequests",
    "twin_requests",
    "counterpart_signals",
    "generate_twin_sets",
    "TwinEvaluation",
    "evaluate_twin",
    "twin_sampling",
    "write_twin_tables",
    "one_heart_reports",
    "ONE_HEART_FINDINGS",
]

#: the reports :func:`one_heart_reports` asks of one heart besides its own later report (the cohort's canonical
#: statements of these findings)
ONE_HEART_FINDINGS = (("atrial_fibrillation",), ("sinus_rhythm", "rbbb"), ("sinus_rhythm", "lvh_strain"))

#: the three generated sets, in the order the tables show them
MODELS = ("twin", "twin_without_reference", "reference_free")
#: the two yardsticks beside them (:func:`bound_sets`): a pure copier and the best any generator on this VAE can do
BOUNDS = ("reference_copy", "target_through_vae")


@dataclass
class TwinRequests:
    """``table``: one row per request (``subject_id``, ``reference_record``, ``target_record``, ``days_between``,
    the target's ``report``, ``findings``, ``age``, ``sex``, ``hr``, and the reference's ``reference_report``,
    ``reference_findings``); ``reference`` and ``target`` (N, 12, L) mV their prepared ECGs; ``fs`` Hz."""

    table: pd.DataFrame
    reference: np.ndarray
    target: np.ndarray
    fs: float


def twin_requests(
    twin_dir: str | os.PathLike, split: str = "test", *, max_requests: int | None = None, seed: int = 0
) -> TwinRequests:
    """The requests of ``split`` (module docstring): chronologically adjacent pairs of each subject's records; at most
    ``max_requests`` of them (a seeded choice, at most one per subject first, then more), in subject order.

    Raises:
        ValueError: the split has no subject with two records (the run was not built with several records per
            subject).
    """
    pairs = run_pairs(twin_dir, split, consecutive=True)
    store = SignalStore(twin_dir)
    frame = store.records(split)
    records = frame.set_index("record_id")
    usable = records[["age", "hr"]].apply(pd.to_numeric, errors="coerce").notna().all(axis=1)
    unusable = pairs["target_record"].astype(str).map(lambda r: not bool(usable.get(r, False)))
    if unusable.any():  # a request needs the target's age and heart rate
        log.warning(
            "%d pair(s) left out: their target record has no age or heart rate (e.g. %s)",
            int(unusable.sum()),
            pairs.loc[unusable, "target_record"].iloc[0],
        )
        pairs = pairs[~unusable]
    if pairs.empty:
        raise ValueError(f"{twin_dir}: no subject of the {split} split has two records (no requests to make)")
    if max_requests is not None and len(pairs) > max_requests:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pairs))
        # one pair per subject before a second one: as many subjects as the budget allows
        rank = pairs.iloc[order].groupby("subject_id").cumcount().to_numpy()
        keep = order[np.argsort(rank, kind="stable")][:max_requests]
        pairs = pairs.iloc[np.sort(keep)]
    signals = np.asarray(store.signals(split), dtype=np.float32)
    row = {r: i for i, r in enumerate(frame["record_id"].astype(str))}
    ref_ids, tgt_ids = pairs["reference_record"].astype(str).tolist(), pairs["target_record"].astype(str).tolist()
    tgt, ref = records.loc[tgt_ids], records.loc[ref_ids]
    table = pd.DataFrame(
        {
            "subject_id": pairs["subject_id"].astype(str).to_numpy(),
            "reference_record": ref_ids,
            "target_record": tgt_ids,
            "days_between": pairs["days_between"].to_numpy(),
            "report": tgt["report"].to_numpy(),
            "findings": tgt["findings"].to_numpy(),
            "age": tgt["age"].to_numpy(float),
            "sex": tgt["sex"].to_numpy(),
            "hr": tgt["hr"].to_numpy(float),
            "reference_report": ref["report"].to_numpy(),
            "reference_findings": ref["findings"].to_numpy(),
        }
    )
    return TwinRequests(table, signals[[row[r] for r in ref_ids]], signals[[row[r] for r in tgt_ids]], float(store.fs))


def _cohort_labels(twin_dir: Path) -> pd.DataFrame:
    path = twin_dir / "cohort" / "cohort_labels.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: counterparts are built from the embedded cohort's templates; this twin run has no cohort"
        )
    labels = pd.read_csv(path, dtype={"subject_id": str, "study_id": str})
    if "template" not in labels.columns:
        raise ValueError(f"{path}: no 'template' column; build the twin cohort with records_per_subject")
    return labels


def counterpart_signals(
    twin_dir: str | os.PathLike, requests: TwinRequests, *, seed: int = 0
) -> tuple[np.ndarray, pd.DataFrame]:
    """For each request, its counterpart (module docstring): the target's findings (its report's, as the cohort's
    labels hold them), heart rate, age and sex on the template of another subject of the same split (drawn with
    ``default_rng(seed)``), prepared onto the models' grid (the prepare stage's resampling). Returns ``(signals
    (N, 12, L) mV, table)``; the table names the other subject and whether the synthesiser met the request
    (``complete``: every finding said, heart rate within tolerance).

    Raises:
        FileNotFoundError / ValueError: the twin run has no cohort with templates (named).
    """
    from ..data.cohort.counterpart import make_counterpart_record

    twin_dir = Path(twin_dir)
    labels = _cohort_labels(twin_dir)
    template_of = labels.drop_duplicates("subject_id").set_index("subject_id")["template"]
    intended_of = labels.set_index("study_id")["intended"]
    subjects = sorted(set(requests.table["subject_id"]))
    rng = np.random.default_rng(seed)
    length = requests.target.shape[-1]
    signals, rows = [], []
    for i, req in enumerate(requests.table.itertuples(index=False)):
        others = [s for s in subjects if s != req.subject_id] or [s for s in template_of.index if s != req.subject_id]
        other = str(others[int(rng.integers(len(others)))])
        kw = dict(template_seed=int(template_of.loc[other]), hr=float(req.hr), age=float(req.age), sex=str(req.sex))
        asked, source = [f for f in str(req.findings).split("|") if f], "report"
        try:
            rec = make_counterpart_record(seed, i, findings=asked, **kw)
        except ValueError:
            # the interpreter's reading of a record can combine findings the synthesiser never builds together
            # (e.g. an ST depression read beside an inverted T): the record's built findings are then requested
            asked, source = [f for f in str(intended_of.loc[str(req.target_record)]).split("|") if f], "built"
            rec = make_counterpart_record(seed, i, findings=asked, **kw)
        signals.append(resample_window(np.asarray(rec["signal"], np.float64).T, length))
        rows.append(
            {
                "target_record": req.target_record,
                "other_subject": other,
                "findings": "|".join(asked),
                "findings_from": source,
                "complete": bool(rec["complete"]),
                "measured_hr": rec.get("measured_hr"),
            }
        )
    return np.stack(signals).astype(np.float32), pd.DataFrame(rows)


def generate_twin_sets(
    twin_pipe: Any, base_pipe: Any, requests: TwinRequests, *, sampling: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """The three sets of :data:`MODELS`, (N, 12, L) mV each, request ``i`` with seed ``seed + i`` in every set, and
    the same ``sampling`` settings (``sampler``, ``num_inference_steps``, ``guidance_scale``, ``guidance_on``,
    ``batch_size``...; keyword arguments of the pipelines' call)."""
    t = requests.table
    kw = dict(age=t["age"].tolist(), sex=t["sex"].tolist(), hr=t["hr"].tolist(), seed=seed, **(sampling or {}))
    reports = t["report"].tolist()
    return {
        "twin": twin_pipe(reports, reference=requests.reference, **kw).signals,
        "twin_without_reference": twin_pipe(reports, **kw).signals,
        "reference_free": base_pipe(reports, **kw).signals,
    }


@torch.no_grad()
def bound_sets(vae: Any, requests: TwinRequests, batch_size: int = 64) -> dict[str, np.ndarray]:
    """The yardsticks of :data:`BOUNDS`, read with the same measures as the generated sets: ``reference_copy``, the
    reference ECG itself through the run's VAE (a "twin" that copies the reference: as personal as the reference
    is, and showing the reference's findings instead of the requested ones), and ``target_through_vae``, the real
    target through the VAE (what a generator that drew the target's latent exactly would score: the ceiling of any
    model on this autoencoder)."""

    def through(x: np.ndarray) -> np.ndarray:
        dev = next(vae.parameters()).device
        out = []
        for i in range(0, len(x), batch_size):
            z = vae.encode(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(dev), sample=False)[0]
            out.append(vae.decode(z).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    return {"reference_copy": through(requests.reference), "target_through_vae": through(requests.target)}


@dataclass
class TwinEvaluation:
    """``consistency``: per model and request the :func:`~diffusets_core.eval.twin.personal_consistency` row;
    ``consistency_summary``: one row per model (:func:`~diffusets_core.eval.twin.consistency_summary`);
    ``following`` / ``following_by_class``: :func:`~diffusets_core.eval.twin_following.following_tables`."""

    consistency: pd.DataFrame
    consistency_summary: pd.DataFrame
    following: pd.DataFrame
    following_by_class: pd.DataFrame


def evaluate_twin(
    run_dir: str | os.PathLike,
    requests: TwinRequests,
    sets: dict[str, np.ndarray],
    counterparts: np.ndarray,
    *,
    complete: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> TwinEvaluation:
    """Both measures for every generated set (module docstring); the judge is ``run_dir``'s (the base run's).
    ``complete`` (N,) bool: the counterparts the synthesiser made as asked (:func:`counterpart_signals`' table);
    given, the consistency summary also holds ``share_closer_complete`` and ``n_complete``, the share over those
    requests only (an incomplete counterpart differs from its target in more than the heart)."""
    tables, summaries = [], []
    for name, x in sets.items():
        table = personal_consistency(x, requests.target, counterparts, requests.fs)
        table.insert(0, "model", name)
        table.insert(1, "target_record", requests.table["target_record"].to_numpy())
        table.insert(2, "subject_id", requests.table["subject_id"].to_numpy())  # the bootstrap resamples subjects
        tables.append(table)
        row = {"model": name, **consistency_summary(table, n_boot=n_boot, seed=seed)}
        if complete is not None:
            kept = consistency_summary(table[np.asarray(complete, dtype=bool)], n_boot=1, seed=seed)
            row.update(share_closer_complete=kept["share_closer"], n_complete=kept["n_readable"])
        summaries.append(row)
    judge = load_twin_judge(run_dir)
    t = requests.table
    target_labels = judge.labels(t["report"].tolist(), t["findings"].tolist())
    reference_labels = judge.labels(t["reference_report"].tolist(), t["reference_findings"].tolist())
    by_class, following = following_tables(judge, sets, target_labels, reference_labels, requests.target)
    return TwinEvaluation(pd.concat(tables, ignore_index=True), pd.DataFrame(summaries), following, by_class)


def twin_sampling(base_pipe: Any, steps: int, batch_size: int = 64) -> dict[str, Any]:
    """The sampling settings every set is generated with: the base run's validated sampler, guidance scale and
    target (``unet/sampling.json``, chapter 4; else the defaults) with ``steps`` steps."""
    s = dict(base_pipe.sampling)
    return {
        "sampler": s["sampler"],
        "num_inference_steps": int(steps),
        "guidance_scale": float(s["guidance_scale"]),
        "guidance_on": s["guidance_on"],
        "batch_size": int(batch_size),
    }


def write_twin_tables(
    twin_dir: str | os.PathLike, ev: TwinEvaluation, requests: TwinRequests, counterparts: pd.DataFrame
) -> Path:
    """Write the evaluation's tables into ``twin_dir/eval`` (atomically): ``requests.csv``, ``counterparts.csv``,
    ``consistency.csv`` (per model and request), ``consistency_summary.csv``, ``following.csv``,
    ``following_by_class.csv``. Returns the folder."""
    out = Path(twin_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    summary = ev.consistency_summary.copy()
    if "share_closer_ci" in summary.columns:  # a (lo, hi) pair per row: two columns in a table
        ci = summary.pop("share_closer_ci").tolist()
        summary["share_closer_lo"] = [c[0] for c in ci]
        summary["share_closer_hi"] = [c[1] for c in ci]
    for name, table in (
        ("requests", requests.table),
        ("counterparts", counterparts),
        ("consistency", ev.consistency),
        ("consistency_summary", summary),
        ("following", ev.following),
        ("following_by_class", ev.following_by_class),
    ):
        with atomic_writer(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    return out


def one_heart_reports(
    twin_pipe: Any, requests: TwinRequests, *, index: int = 0, sampling: dict[str, Any] | None = None, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Request ``index``'s subject under several reports (what chapter 11 draws): the reference ECG, the real later
    record, the twin's ECG for the later record's report, then the twin's ECG for each report of
    :data:`ONE_HEART_FINDINGS` (same patient values, same seed). Returns ``(label, (12, L) mV)`` rows."""
    req = requests.table.iloc[index]
    reports = [req["report"]] + ["|".join(statement_of(f) for f in fids) for fids in ONE_HEART_FINDINGS]
    out = twin_pipe(
        reports,
        age=float(req["age"]),
        sex=str(req["sex"]),
        hr=float(req["hr"]),
        reference=requests.reference[index],
        seed=[seed] * len(reports),
        **(sampling or {}),
    )

    def short(report: str) -> str:
        return " / ".join(report.split("|"))[:48]

    rows = [
        (f"reference (earlier)\n{short(req['reference_report'])}", requests.reference[index]),
        (f"real later record\n{short(req['report'])}", requests.target[index]),
    ]
    rows += [(f"twin: {short(r)}", sig) for r, sig in zip(reports, out.signals)]
    return rows
