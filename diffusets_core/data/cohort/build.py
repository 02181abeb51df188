"""``build_cohort``: the embedded default cohort, written as WFDB records in the MIMIC-IV-ECG layout.

Each record is a pure function of ``(seed, index)``: its GAN morphology, class, patient, edits, noise
and report. Records are built in worker processes in any order and files are written with their final
names, then the tables are written sorted by index, so the output is byte-identical for a seed whatever
the number of workers.

Findings: each record's findings are drawn by the planner (:func:`.plan.plan_record`: one rhythm and 0-3 further
findings under the compatibility rules of :mod:`.findings`, never a held-out combination) and synthesised as one
composed edit. The interpreter then reads the finished signal and decides what the report says.
``cohort_labels.csv`` keeps both as structured labels beside the text: ``intended`` (the drawn findings) and
``findings`` (the finding ids of the interpreter's statements, in report order: what the report says).

Wording: by default (``wording="bank"``) each statement is worded by the wording bank (:mod:`.wordings`, train
part only) with a generator of its own, ``default_rng([seed, index, WORDING_STREAM])``, so signals, patients and
times do not depend on the wording. ``wording="fixed"`` writes the interpreter's canonical statements instead
(the one-wording world of earlier versions), with everything else identical.

Subjects: by default (``records_per_subject=None``) records ``3k`` and ``3k+1`` share a subject and ``3k+2`` has its
own (:func:`.plan.subject_of`), and every record draws its own GAN morphology. ``records_per_subject`` (an int, or a
range ``(lo, hi)``) builds the opt-in *twin* layout instead: subject ``k`` gets a number of records drawn from
``lo..hi`` (:func:`twin_slots`, generator ``default_rng([seed, SUBJECT_STREAM, k])``, the last subject cut to reach
``n``), all from one morphology template (the same GAN normal beat; age and sex are per subject in both layouts),
each with its own findings, heart rate, noise, time and wording drawn as in the default layout. A subject's findings
are drawn independently per record, so two records of a subject may carry the same findings (never the same heart
rate in practice: it is drawn from a continuous range). ``cohort_labels.csv`` then also holds ``template`` (the
subject's GAN seed) and ``visit`` (the record's place among its subject's records, in index order), and
``COHORT.json`` the setting; the default layout writes neither, so its files are those of earlier versions.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...fileio import atomic_write_text, atomic_writer
from ...layout import COHORT_DIR
from ..leads import CANONICAL_LEADS as CANON
from . import interpreter as it
from .conditions import add_noise, derive_12, synthesize
from .findings import (
    EXTRA_FINDINGS_PROBS,
    FINDINGS,
    HELD_OUT_COMBINATIONS,
    RHYTHM_WEIGHTS,
    finding_of_statement,
    is_held_out,
)
from .interpreter import interpret
from .morphology import FS, GAN_BATCH, Template, gan_record, gan_records, make_template
from .plan import patient, plan_record, subject_of

log = logging.getLogger(__name__)

# 2: batched GAN pass, T-end search to 0.72 RR, MIMIC fiducial columns; 3: combinable findings drawn per family,
# reports worded by the wording bank, intended and said findings as labels
COHORT_VERSION = "3"
WORDINGS = ("fixed", "bank")
MAX_REDRAWS = 20  # findings drawn again for a record whose report would state a held-out combination
WORDING_STREAM = 23  # the third seed word of the wording generator: a stream the record's other draws never use
DISK_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")

MEASURE_COLS = [
    "bandwidth",
    "filtering",
    "rr_interval",
    "p_onset",
    "p_end",
    "qrs_onset",
    "qrs_end",
    "t_end",
    "p_axis",
    "qrs_axis",
    "t_axis",
]


def rel_path(subject: int, study: int) -> str:
    p = f"p{subject}"
    return f"files/{p[:5]}/{p}/s{study}/{study}"


def _gan_seed(seed: int, index: int) -> int:
    """The GAN seed of a record: the first draw of its generator ``default_rng([seed, index])``."""
    return int(np.random.default_rng([seed, index]).integers(0, 2**31 - 1))


def check_wording(wording: str) -> str:
    """``wording`` itself when it is one of :data:`WORDINGS`. Raises ValueError naming the choices otherwise."""
    if wording not in WORDINGS:
        raise ValueError(f"wording must be one of {WORDINGS}, got {wording!r}")
    return wording


#: Seed word of the twin layout's subject draws (:func:`twin_slots`): a stream no record uses.
SUBJECT_STREAM = 37
#: First subject id of the twin layout (the default layout's ids start here too: a cohort has one layout).
FIRST_SUBJECT = 10_000_000


def parse_records_per_subject(value: Any) -> tuple[int, int] | None:
    """The twin layout's records-per-subject range ``(lo, hi)`` from an int ``k`` (``(k, k)``), a pair or list
    ``[lo, hi]``, or text ``"k"`` / ``"lo-hi"`` (the CLI's form); ``None`` stays ``None`` (the default layout).

    Raises:
        ValueError: not one of these forms, ``lo < 1`` or ``lo > hi``.
    """
    if value is None:
        return None
    what = f"records_per_subject must be a positive int or a range lo-hi with 1 <= lo <= hi, got {value!r}"
    try:
        if isinstance(value, str):
            parts = [int(x) for x in value.strip().split("-")]
        elif isinstance(value, (list, tuple)):
            parts = [int(x) for x in value]
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            parts = [int(value)]
        else:
            raise ValueError(what)
    except (TypeError, ValueError):
        raise ValueError(what) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 1 or parts[0] > parts[1]:
        raise ValueError(what)
    return parts[0], parts[1]


@dataclass(frozen=True)
class TwinSlot:
    """Where a record of the twin layout belongs: its ``subject_id``, the subject's morphology seed ``gan_seed`` (the
    template all its records share) and ``visit``, its place among the subject's records (0-based, index order)."""

    subject_id: int
    gan_seed: int
    visit: int


def twin_slots(seed: int, n: int, records_per_subject: Any) -> list[TwinSlot]:
    """The :class:`TwinSlot` of records ``0..n-1`` in the twin layout (module docstring): subject ``k`` has id
    ``FIRST_SUBJECT + k`` and draws, from ``default_rng([seed, SUBJECT_STREAM, k])``, first its record count
    (uniform in ``lo..hi``), then its GAN seed. The last subject keeps only the records that fit in ``n``.

    Raises:
        ValueError: ``records_per_subject`` not a valid setting (:func:`parse_records_per_subject`) or ``None``.
    """
    rps = parse_records_per_subject(records_per_subject)
    if rps is None:
        raise ValueError("twin_slots needs a records_per_subject setting, got None")
    lo, hi = rps
    slots: list[TwinSlot] = []
    k = 0
    while len(slots) < n:
        rng = np.random.default_rng([seed, SUBJECT_STREAM, k])
        count = int(rng.integers(lo, hi + 1))
        gan_seed = int(rng.integers(0, 2**31 - 1))
        slots += [TwinSlot(FIRST_SUBJECT + k, gan_seed, v) for v in range(count)]
        k += 1
    return slots[:n]


def subject_template(gan_seed: int, source: np.ndarray | None, what: str) -> Template:
    """The morphology template of GAN seed ``gan_seed`` (a subject's ``template`` in the twin layout): from
    ``source`` (the draw of ``gan_seed``, when given) else drawn with ``gan_seed``; a rare GAN record with too few
    clean beats for a template is replaced by another draw. ``what`` names the record in the error.

    Raises:
        RuntimeError: five draws without a usable template.
    """
    for attempt in range(5):
        try:
            raw = source if (attempt == 0 and source is not None) else gan_record(gan_seed + attempt * 7919)
            return make_template(raw)
        except ValueError:
            continue
    raise RuntimeError(f"{what}: no usable GAN morphology")


#: Seed word of the held-out combination records (:func:`make_combination_record`): a stream no cohort record uses.
COMBINATION_STREAM = 31


def make_combination_record(seed: int, index: int, findings: tuple[str, ...], wording: str = "bank") -> dict[str, Any]:
    """One record with a requested set of findings that the cohort never builds (a held-out combination, as the
    benchmark requests it): the same synthesiser, interpreter and wording as :func:`make_record`, with the findings
    given instead of drawn. A rhythm is added when ``findings`` has none (sinus rhythm). The edit is drawn again
    (up to :data:`MAX_REDRAWS` times) until the interpreter says every requested finding; ``complete`` tells
    whether it did. Keys as :func:`make_record` plus ``requested`` and ``complete``.

    Raises:
        ValueError: unknown or unbuildable findings, or ``wording`` not in :data:`WORDINGS`.
    """
    from .findings import finding as _finding
    from .plan import plan_edit

    check_wording(wording)
    requested = tuple(findings)
    fids = list(requested)
    if not any(_finding(f).family == "rhythm" for f in fids):
        fids.append("sinus_rhythm")
    rng = np.random.default_rng([seed, COMBINATION_STREAM, index])
    age, sex = patient(seed, 90_000_000 + index)
    tpl = subject_template(int(rng.integers(0, 2**31 - 1)), None, f"combination record {index}")
    for _ in range(MAX_REDRAWS):
        edit = plan_edit(fids, tpl, rng, age, sex)
        sig = derive_12(add_noise(synthesize(tpl, edit, rng), edit, rng))
        interp = interpret(sig, sex=sex)
        said = [finding_of_statement(s) for s in interp.statements]
        if set(requested) <= set(said):
            break
    statements = interp.statements
    if wording == "bank":
        from .wordings import word_statement

        wrng = np.random.default_rng([seed, COMBINATION_STREAM, index, WORDING_STREAM])
        statements = [word_statement(s, wrng, "train") for s in statements]
    return {
        "index": index,
        "signal": sig.astype(np.float32),
        "requested": list(requested),
        "intended": fids,
        "findings": said,
        "complete": set(requested) <= set(said),
        "target_hr": round(float(edit.hr), 1),
        "age": age,
        "sex": sex,
        "statements": statements,
        "measurements": interp.measurements,
    }


def make_record(
    seed: int, index: int, source: np.ndarray | None = None, wording: str = "bank", slot: TwinSlot | None = None
) -> dict[str, Any]:
    """Build one record: ``signal`` (12, 5000) mV canonical order, ``intended`` (the drawn finding ids),
    ``findings`` (the finding ids of the interpreter's statements, report order), ``statements`` (the report),
    patient, target heart rate and time.

    ``source`` optionally passes the record's first GAN draw, ``gan_record(_gan_seed(seed, index))``,
    already computed in a batch (what :func:`build_cohort` does); the result is the same either way.
    ``wording="bank"`` (default) words the statements with the bank's train wordings; ``"fixed"`` keeps the
    canonical statements. Every other field does not depend on the wording.

    ``slot`` (twin layout, :func:`twin_slots`) gives the subject and its morphology seed: the record is then built
    from the subject's template (``source`` is then the draw of ``slot.gan_seed``) and also carries ``template``
    (that seed) and ``visit``; its own generator still makes (and discards) the first draw, the default layout's
    GAN seed, so its other draws come from the same stream positions.

    Raises:
        ValueError: ``wording`` not in :data:`WORDINGS`.
    """
    check_wording(wording)
    rng = np.random.default_rng([seed, index])
    subject = subject_of(index) if slot is None else slot.subject_id
    age, sex = patient(seed, subject)
    own_seed = int(rng.integers(0, 2**31 - 1))  # = _gan_seed(seed, index)
    tpl = subject_template(own_seed if slot is None else slot.gan_seed, source, f"record {index}")
    for _ in range(MAX_REDRAWS):
        intended, edit = plan_record(tpl, rng, age, sex)
        sig = derive_12(add_noise(synthesize(tpl, edit, rng), edit, rng))
        interp = interpret(sig, sex=sex)  # the sex selects the Cornell LVH limit
        said = [finding_of_statement(s) for s in interp.statements]  # the interpreter decides what is said ...
        # the planner never draws a held-out combination, but a report is what the interpreter reads: a record
        # whose report would state one (a misread finding completing a pair) is drawn again, from the same stream
        if not is_held_out(said):
            break
    else:
        raise RuntimeError(f"record {index}: every draw's report states a held-out combination")
    when = _dt.datetime(2180, 1, 1) + _dt.timedelta(minutes=int(rng.integers(0, 60 * 24 * 365 * 10)))
    statements = interp.statements
    if wording == "bank":
        from .wordings import word_statement

        wrng = np.random.default_rng([seed, index, WORDING_STREAM])
        statements = [word_statement(s, wrng, "train") for s in statements]  # ... the bank how
    rec = {
        "index": index,
        "subject_id": subject,
        "study_id": 40_000_000 + index,
        "signal": sig.astype(np.float32),
        "intended": list(intended),
        "findings": said,
        "target_hr": round(float(edit.hr), 1),
        "age": age,
        "sex": sex,
        "statements": statements,
        "measurements": interp.measurements,
        "when": when,
    }
    if slot is not None:
        rec.update(template=slot.gan_seed, visit=slot.visit)
    return rec


def _write_record(root: Path, rec: dict[str, Any]) -> None:
    import wfdb

    rel = rel_path(rec["subject_id"], rec["study_id"])
    d = root / os.path.dirname(rel)
    d.mkdir(parents=True, exist_ok=True)
    sig = rec["signal"][[CANON.index(n) for n in DISK_ORDER]].T.astype(np.float64)
    when = rec["when"]
    wfdb.wrsamp(
        str(rec["study_id"]),
        fs=FS,
        units=["mV"] * 12,
        sig_name=list(DISK_ORDER),
        p_signal=np.clip(sig, -163.0, 163.0),
        fmt=["16"] * 12,
        adc_gain=[200.0] * 12,
        baseline=[0] * 12,
        base_time=when.time(),
        base_date=when.date(),
        write_dir=str(d),
    )


def _work(args: tuple[int, list[int], str, str, list[TwinSlot] | None]) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    seed, indices, root, wording, slots = args
    rows = []
    if slots is None:
        sources = gan_records([_gan_seed(seed, i) for i in indices])  # one batched GAN pass per chunk
    else:
        # a GAN draw is a pure function of its seed (gan_records), so a subject's template is drawn once per chunk
        unique = sorted({s.gan_seed for s in slots})
        drawn = dict(zip(unique, gan_records(unique)))
        sources = [drawn[s.gan_seed] for s in slots]
    for j, (i, src) in enumerate(zip(indices, sources)):
        rec = make_record(seed, i, source=src, wording=wording, slot=None if slots is None else slots[j])
        _write_record(Path(root), rec)
        rec.pop("signal")
        rows.append(rec)
    return rows


def _measure_row(rec: dict[str, Any]) -> dict[str, Any]:
    m = rec["measurements"]
    row = {
        "subject_id": rec["subject_id"],
        "study_id": rec["study_id"],
        "cart_id": 6848296,
        "ecg_time": rec["when"].strftime("%Y-%m-%d %H:%M:%S"),
    }
    st = rec["statements"]
    for i in range(18):
        row[f"report_{i}"] = st[i] if i < len(st) else None

    def ms(v):
        return None if v is None or not np.isfinite(v) else int(round(v))

    fr = m.get("frame", {})
    # MIMIC semantics: rr_interval in ms; p_onset..t_end are times (ms) in the measured median-beat frame;
    # axes in degrees. Missing values (no P wave, unreadable record) are left empty.
    row.update(
        {
            "bandwidth": "0.005-150 Hz",
            "filtering": "60 Hz notch Baseline filter",
            "rr_interval": ms(m.get("rr_ms")),
            **{k: ms(fr.get(k)) for k in ("p_onset", "p_end", "qrs_onset", "qrs_end", "t_end")},
            "p_axis": ms(m.get("p_axis")),
            "qrs_axis": ms(m.get("qrs_axis")),
            "t_axis": ms(m.get("t_axis")),
        }
    )
    return row


def _generation_config() -> dict[str, Any]:
    """How the cohort is made (stored in COHORT.json): no clock, host or path, so reruns are identical."""
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    thresholds = {
        k: getattr(it, k)
        for k in (
            "HR_BRADY",
            "HR_TACHY",
            "AF_RR_CV",
            "PR_LONG_MS",
            "QRS_WIDE_MS",
            "ST_ELEV_MV",
            "T_INV_MV",
            "T_PEAKED_MV",
            "QTCF_LONG_MS",
            "LOW_VOLT_MV",
            "RSR_V1_MV",
            "P_WAVE_MV",
            "QRS_REACH_S",
            "AXIS_LEFT_DEG",
            "AXIS_RIGHT_DEG",
            "AXIS_LAFB_DEG",
            "INITIAL_MV",
            "INITIAL_FRAC",
            "Q_WAVE_MV",
            "Q_WAVE_MS",
            "Q_WAVE_V2V3_MS",
            "Q_WAVE_R_FRAC",
            "SOKOLOW_LVH_MV",
            "CORNELL_LVH_MV",
            "ST_DEPR_MV",
            "T_FLAT_MV",
            "U_WAVE_MV",
            "U_PROMINENCE_MV",
            "T_UPRIGHT_FRAC",
            "T_LEVEL_MV",
            "R_PEAK_MIN_FRAC",
            "QRS_MIN_FRAC",
            "AF_P_CONSTANT",
            "EARLY_FRAC",
            "PAC_QRS_CORR",
            "PAC_PAUSE",
            "PAC_SINUS_VAR",
            "FLUTTER_RR_CV",
            "FLUTTER_PERIODICITY",
            "FLUTTER_RATE",
            "SA_RANGE_MS",
            "SA_PHASIC_MS",
            "WENCKEBACH_PR_DROP_MS",
            "LONE_P_FRAC",
            "ATRIAL_REGULAR_FRAC",
            "PRE_EXC_PR_MS",
            "PRE_EXC_QRS_MS",
            "DELTA_MS",
            "DELTA_FRAC",
            "PRE_EXC_V1_TERMINAL_MV",
        )
    }
    return {
        "morphology": {
            "package": "deepfake-ecg",
            "version": ver("deepfake-ecg"),
            "leads": "I, II, V1-V6",
            "noise": "uniform(-1,1) from torch.Generator(gan_seed)",
            "batch": GAN_BATCH,
        },
        "derived_leads": "III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 (after editing)",
        "record_seed": "numpy default_rng([seed, index])",
        "interpreter_thresholds": thresholds,
        "patients": "age ~ Normal(58, 17) clipped 18-95, 52 % men; voltage x(1.15 - 0.005(age - 20)), "
        "women x0.9 voltage and x1.03 QT",
        "diffusets_core": ver("diffusets-core"),
        "neurokit2": ver("neurokit2"),
        "wfdb": ver("wfdb"),
    }


def _build_rows(
    root: Path, n: int, seed: int, workers: int, progress: bool, wording: str, slots: list[TwinSlot] | None = None
) -> list[dict[str, Any]]:
    """Build and write records 0..n-1 into ``root`` in chunks of 32 (:func:`_work`; in ``workers`` forked
    processes when more than one) and return their rows (:func:`make_record` without the signal), sorted by index.
    ``slots``: the twin layout's :class:`TwinSlot` of every record (``None``: the default layout)."""
    from tqdm import tqdm

    chunk = 32  # two full GAN batches; chunks are fixed by index, so the output is independent of workers
    jobs = [
        (seed, list(range(s, min(n, s + chunk))), str(root), wording, None if slots is None else slots[s : s + chunk])
        for s in range(0, n, chunk)
    ]
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=n, disable=not progress, unit="ecg", desc="cohort")
    if workers and workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
            for part in ex.map(_work, jobs):
                rows += part
                bar.update(len(part))
    else:
        for job in jobs:
            part = _work(job)
            rows += part
            bar.update(len(part))
    bar.close()
    rows.sort(key=lambda r: r["index"])
    return rows


def _record_list(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``record_list.csv``: subject, study, file name, ECG time and record path of each row (MIMIC-IV-ECG)."""
    return pd.DataFrame(
        [
            {
                "subject_id": r["subject_id"],
                "study_id": r["study_id"],
                "file_name": r["study_id"],
                "ecg_time": r["when"].strftime("%Y-%m-%d %H:%M:%S"),
                "path": rel_path(r["subject_id"], r["study_id"]),
            }
            for r in rows
        ]
    )


def _machine_measurements(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``machine_measurements.csv``: the report and measurements of each row (:func:`_measure_row`), MIMIC-IV-ECG
    columns, integer measurements as nullable integers."""
    mm = pd.DataFrame([_measure_row(r) for r in rows])
    for col in ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis", "t_axis"):
        mm[col] = mm[col].astype("Int64")  # integers, empty where missing (as in MIMIC's CSV)
    return mm


def _patients(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``patients.csv``: one row per subject (its first record's age and sex), sorted by subject (MIMIC-IV)."""
    subjects = {}
    for r in rows:
        subjects.setdefault(r["subject_id"], (r["age"], r["sex"]))
    return pd.DataFrame(
        [
            {
                "subject_id": s,
                "gender": sex,
                "anchor_age": int(age),
                "anchor_year": 2180,
                "anchor_year_group": "2014 - 2016",
                "dod": None,
            }
            for s, (age, sex) in sorted(subjects.items())
        ]
    )


def _cohort_labels(rows: list[dict[str, Any]], seed: int) -> pd.DataFrame:
    """``cohort_labels.csv``: the structured labels of each row (intended and said findings, ``|``-joined), target
    heart rate, patient and build seed; in the twin layout also ``template`` (the subject's GAN seed) and
    ``visit``."""
    return pd.DataFrame(
        [
            {
                "subject_id": r["subject_id"],
                "study_id": r["study_id"],
                "intended": "|".join(r["intended"]),
                "findings": "|".join(r["findings"]),
                "target_hr": r["target_hr"],
                "age": r["age"],
                "sex": r["sex"],
                "seed": seed,
                **({"template": r["template"], "visit": r["visit"]} if "template" in r else {}),
            }
            for r in rows
        ]
    )


def _summary(
    rows: list[dict[str, Any]], n: int, seed: int, wording: str, rps: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The ``COHORT.json`` summary of a build: size, seed, version, finding counts (intended and said), the
    planner's settings, :func:`_generation_config`, the wording (the bank's hash and seed for ``"bank"``) and, in
    the twin layout only (``rps``, the records-per-subject range), ``records_per_subject`` and ``subjects``."""
    drawn = [f.id for f in FINDINGS if f.drawn]
    counts = {f: int(sum(f in r["intended"] for r in rows)) for f in drawn}
    said_counts = {f.id: int(sum(f.id in r["findings"] for r in rows)) for f in FINDINGS}
    summary = {
        "n": n,
        "seed": seed,
        "version": COHORT_VERSION,
        "layout": "MIMIC-IV-ECG",
        "fs": FS,
        "finding_counts": counts,
        "said_counts": said_counts,
        "statements": {f.id: f.statement for f in FINDINGS},
        "planner": {
            "rhythm_weights": RHYTHM_WEIGHTS,
            "extra_findings_probs": list(EXTRA_FINDINGS_PROBS),
            "held_out_combinations": ["|".join(c) for c in HELD_OUT_COMBINATIONS],
        },
        "generation": _generation_config(),
    }
    if wording == "bank":
        import hashlib

        from .wordings import BANK_FILE

        summary["wording"] = {
            "mode": "bank",
            "part": "train",
            "bank_sha256": hashlib.sha256(BANK_FILE.read_bytes()).hexdigest(),
            "seed": f"numpy default_rng([seed, index, {WORDING_STREAM}])",
        }
    else:
        summary["wording"] = {"mode": "fixed"}
    if rps is not None:  # the default layout's COHORT.json stays as it was
        summary["records_per_subject"] = list(rps)
        summary["subjects"] = {
            "n": len({r["subject_id"] for r in rows}),
            "layout": "twin: one GAN morphology template per subject, findings and heart rate drawn per record",
            "seed": f"numpy default_rng([seed, {SUBJECT_STREAM}, subject index]): record count, then GAN seed",
        }
    return summary


def build_cohort(
    out_dir: str | os.PathLike,
    n: int = 4000,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    wording: str = "bank",
    records_per_subject: int | tuple[int, int] | str | None = None,
) -> dict[str, Any]:
    """Build ``n`` records into ``out_dir`` (MIMIC-IV-ECG layout plus ``cohort_labels.csv`` and
    ``COHORT.json``). Returns the summary that ``COHORT.json`` holds.

    ``wording="bank"`` (default) words the reports with the wording bank (see the module docstring); ``"fixed"``
    writes the interpreter's canonical statements. ``records_per_subject`` (``k``, ``(lo, hi)`` or ``"lo-hi"``)
    builds the twin layout, several records per subject from one morphology template (module docstring);
    ``None`` (default) the default layout, byte for byte as before the setting existed.

    Raises:
        ValueError: ``n`` not positive, ``wording`` not in :data:`WORDINGS`, or ``records_per_subject`` not a
            valid setting (:func:`parse_records_per_subject`).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    check_wording(wording)
    rps = parse_records_per_subject(records_per_subject)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    slots = None if rps is None else twin_slots(seed, n, rps)
    rows = _build_rows(root, n, seed, workers, progress, wording, slots)
    for name, frame in (
        ("record_list.csv", _record_list(rows)),
        ("machine_measurements.csv", _machine_measurements(rows)),
        ("patients.csv", _patients(rows)),
        ("cohort_labels.csv", _cohort_labels(rows, seed)),
    ):
        with atomic_writer(root / name) as tmp:
            frame.to_csv(tmp, index=False)
    summary = _summary(rows, n, seed, wording, rps)
    atomic_write_text(root / "COHORT.json", json.dumps(summary, indent=2))  # written last: marks a complete cohort
    log.info("cohort: %d records in %.1f s", n, time.perf_counter() - t0)
    return summary


def agreement_table(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Per finding: how often the report says what the record was built to show.

    Read from ``cohort_labels.csv`` (structured labels, never patterns on the text). Rows: every drawn finding
    of the catalogue that some record intends, plus ``normal_ecg`` (intended = a record drawn as sinus rhythm
    with nothing else). Columns: ``statement`` (canonical), ``family``, ``records`` (intending it),
    ``agreement`` (share of those whose report says it) and ``false_positive`` (share of the other records whose
    report says it anyway).

    Raises:
        FileNotFoundError: no ``cohort_labels.csv`` in ``out_dir``.
        ValueError: a ``cohort_labels.csv`` without ``intended`` and ``findings`` columns (an older cohort).
    """
    from .findings import finding

    path = Path(out_dir) / "cohort_labels.csv"
    labels = pd.read_csv(path)
    missing = {"intended", "findings"} - set(labels.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (a cohort of version < 3; rebuild it)")
    intended = labels["intended"].fillna("").str.split("|").apply(set)
    said = labels["findings"].fillna("").str.split("|").apply(set)
    rows = []
    ids = [f.id for f in FINDINGS if f.drawn] + ["normal_ecg"]
    for fid in ids:
        if fid == "normal_ecg":
            mask = intended.apply(lambda xs: xs == {"sinus_rhythm"})
        else:
            mask = intended.apply(lambda xs: fid in xs)  # noqa: B023 (applied right here)
        if not mask.any():
            continue
        hit = said.apply(lambda xs: fid in xs)  # noqa: B023
        rows.append(
            {
                "finding": fid,
                "statement": finding(fid).statement,
                "family": finding(fid).family,
                "records": int(mask.sum()),
                "agreement": float(hit[mask].mean()),
                "false_positive": float(hit[~mask].mean()) if (~mask).any() else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("finding")


@dataclass
class CohortBuild:
    """What :func:`ensure_cohort` did: the cohort folder, its ``COHORT.json`` summary, and the build time in
    seconds (``None`` when an existing build was reused)."""

    data_dir: Path
    summary: dict[str, Any]
    seconds: float | None

    @property
    def reused(self) -> bool:
        return self.seconds is None

    @property
    def message(self) -> str:
        """One line for the reader: reused, or built how many records in how long."""
        if self.reused:
            return f"reusing the cohort in {self.data_dir}"
        return f"built {self.summary['n']} records in {self.seconds:.1f} s into {self.data_dir}"


def _wording_of(summary: dict[str, Any]) -> str:
    w = summary.get("wording")
    return w.get("mode", "fixed") if isinstance(w, dict) else "fixed"


def reusable_cohort(
    data_dir: str | os.PathLike,
    n: int,
    seed: int,
    wording: str = "bank",
    records_per_subject: int | tuple[int, int] | str | None = None,
) -> dict[str, Any] | None:
    """The ``COHORT.json`` summary of an existing build in ``data_dir`` with the same ``n``, ``seed``,
    :data:`COHORT_VERSION`, ``wording`` and ``records_per_subject`` (absent from a default-layout build) (the build
    is deterministic for these, so it can be reused), else ``None``."""
    meta_path = Path(data_dir) / "COHORT.json"
    previous = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    rps = parse_records_per_subject(records_per_subject)
    if (
        previous.get("n") == n
        and previous.get("seed") == seed
        and previous.get("version") == COHORT_VERSION
        and _wording_of(previous) == wording
        and previous.get("records_per_subject") == (None if rps is None else list(rps))
    ):
        return previous
    return None


def ensure_cohort(
    data_dir: str | os.PathLike,
    *,
    n: int,
    seed: int,
    workers: int = 2,
    progress: bool = False,
    wording: str = "bank",
    records_per_subject: int | tuple[int, int] | str | None = None,
) -> CohortBuild:
    """Reuse the cohort in ``data_dir`` when :func:`reusable_cohort` finds one, else build it with
    :func:`build_cohort` (the same policy for the data chapter and the CLI)."""
    data_dir = Path(data_dir)
    previous = reusable_cohort(data_dir, n, seed, check_wording(wording), records_per_subject)
    if previous is not None:
        return CohortBuild(data_dir, previous, None)
    t0 = time.perf_counter()
    # the default layout's call is the one it always was (a stand-in build_cohort need not know the setting)
    twin = {} if records_per_subject is None else {"records_per_subject": records_per_subject}
    summary = build_cohort(data_dir, n=n, seed=seed, workers=workers, progress=progress, wording=wording, **twin)
    return CohortBuild(data_dir, summary, time.perf_counter() - t0)


def source_data_dir(
    source: str,
    data_dir: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    *,
    n: int,
    seed: int,
    workers: int = 2,
    records_per_subject: int | tuple[int, int] | str | None = None,
) -> tuple[Path, CohortBuild | None]:
    """The folder :func:`~diffusets_core.data.prepare.prepare_dataset` reads for ``source``.

    ``source == "cohort"``: the cohort in ``<run_dir>/cohort``, built or reused by :func:`ensure_cohort` (then
    returned too; a ``data_dir`` given with it is ignored, with a warning; ``records_per_subject`` selects the twin
    layout, see :func:`build_cohort`); any other source: ``data_dir`` as given, and ``None``.

    Raises:
        ValueError: a real source without ``data_dir``, a cohort size ``n``
            that is not a positive integer (the cohort is built, so "all records" has no meaning for it), or
            ``records_per_subject`` with a real source (its subjects are the dataset's).
    """
    if source == "cohort":
        if data_dir:
            log.warning(
                "data_dir=%r is ignored: the cohort source builds its own folder in run_dir/%s (use source "
                "'mimic' to read an existing cohort folder)",
                str(data_dir),
                COHORT_DIR,
            )
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"n={n!r}: the cohort source needs a positive number of records to build")
        twin = {} if records_per_subject is None else {"records_per_subject": records_per_subject}
        built = ensure_cohort(Path(run_dir) / COHORT_DIR, n=n, seed=seed, workers=workers, **twin)
        return built.data_dir, built
    if records_per_subject is not None:
        raise ValueError(
            f"records_per_subject={records_per_subject!r} applies to the cohort source only; source {source!r} "
            "has the dataset's own subjects"
        )
    if not data_dir:
        raise ValueError(f"source {source!r} reads an existing dataset: give its folder as data_dir")
    return Path(data_dir), None
