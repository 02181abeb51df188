"""The ECG explorer's back-end: conditions in, a generated 12-lead ECG with what was measured on it out.

One call of :meth:`Explorer.explore` takes report statements, age, sex, heart rate, a seed and a guidance scale,
and returns an :class:`ExplorerResult`: the ECG ``(12, L)`` mV, its print-out on standard paper
(:func:`diffusets_core.viz.ecgplot.plot_12lead`: 25 mm/s, 10 mm/mV, 3×4 + lead II rhythm strip), the measured
HR, PR, QRS, QT, QTc (the benchmark's :func:`diffusets_core.eval.features.measure_record`) and QRS axis (the
cohort interpreter's :func:`diffusets_core.data.cohort.interpreter.measure`), the cohort interpreter's own
reading of the generated ECG, whether that reading names the requested classes (the benchmark's class
patterns, :data:`diffusets_core.eval.taxonomy.EVAL_CLASSES`), and the real training ECG whose report is closest
to the requested one (cosine similarity of the run's own text embeddings; patient values break ties).

With a twin model (a twin run's pipeline, :mod:`diffusets_core.models.twin`) the call also takes a *reference*: the
patient's own earlier ECG (:class:`ReferenceECG`, e.g. a test record of the twin run listed by
:meth:`Explorer.reference_choices`), which the result names and shows beside the generated ECG.

Bad input raises :class:`ExplorerInputError` (a ``ValueError``) whose message is written for the reader; the
widget (:mod:`diffusets_core.apps.explorer_widget`) shows that message instead of a traceback.

Generation uses DPM-Solver++(2M) at 20 steps by default (about half a second per ECG on one laptop CPU core
for the cpu profile's model) and the run's validated guidance scale unless one is given.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.cohort.interpreter import interpret, measure
from ..data.cohort.morphology import FS as COHORT_FS
from ..data.preprocess import MODEL_FS
from ..data.reference_ecg import ReferenceNotFoundError, reference_from_run
from ..data.store import SignalStore
from ..data.wfdb_io import RecordError
from ..diffusion.pipeline import DiffuSETSPipeline
from ..eval.classifiers import labels_for_reports
from ..eval.features import measure_record
from ..eval.taxonomy import EVAL_CLASSES
from ..fileio import l2_normalize
from ..generate.writer import export_batch
from ..text.embed import load_run_embeddings
from ..text.patient import encode_patient
from ..viz.ecgplot import plot_12lead

__all__ = [
    "ExplorerInputError",
    "Conditions",
    "RealMatch",
    "ReferenceECG",
    "ExplorerResult",
    "Explorer",
    "check_conditions",
    "measure_ecg",
    "read_ecg",
    "MEASUREMENTS",
]

#: Sampler and steps of the fast path (DPM-Solver++ needs about 20 steps for DDIM-50 quality).
FAST_SAMPLER, FAST_STEPS = "dpmsolver++", 20
#: Accepted guidance scales (1 = plain conditional sampling).
GUIDANCE_RANGE = (1.0, 15.0)
#: Accepted sampler steps.
STEPS_RANGE = (2, 1000)
#: The measurements shown, in order: key -> (label, unit).
MEASUREMENTS = {
    "hr": ("HR", "bpm"),
    "pr": ("PR", "ms"),
    "qrs": ("QRS", "ms"),
    "qt": ("QT", "ms"),
    "qtc": ("QTc (Bazett)", "ms"),
    "axis": ("QRS axis", "°"),
}


class ExplorerInputError(ValueError):
    """Conditions the explorer cannot generate for; the message says which field and why."""


@dataclass(frozen=True)
class Conditions:
    """Validated conditions of one ECG. ``statements`` in report order; age in years; sex ``"M"``/``"F"``; hr in
    bpm; ``guidance_scale=None`` takes the run's validated scale."""

    statements: tuple[str, ...]
    age: float
    sex: str
    hr: float
    seed: int = 0
    guidance_scale: float | None = None
    steps: int = FAST_STEPS
    sampler: str = FAST_SAMPLER

    @property
    def report(self) -> str:
        """The statements joined with ``|`` (the manifest's report format)."""
        return "|".join(self.statements)

    def label(self) -> str:
        """One line for titles: report / patient / seed."""
        return f"{' / '.join(self.statements)} | {self.sex}, {self.age:.0f} y, HR {self.hr:.0f} | seed {self.seed}"


def _statements(report: str | Sequence[str] | None) -> tuple[str, ...]:
    if report is None:
        parts: list[str] = []
    elif isinstance(report, str):
        parts = report.replace("\n", "|").split("|")
    else:
        parts = [str(p) for p in report]
    return tuple(p.strip() for p in parts if p and p.strip())


def _number(name: str, value: Any, unit: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ExplorerInputError(f"{name}: {value!r} is not a number ({unit})") from None
    if not math.isfinite(x):
        raise ExplorerInputError(f"{name}: {value!r} is not a finite number ({unit})")
    return x


def check_conditions(
    report: str | Sequence[str] | None,
    age: Any,
    sex: Any,
    hr: Any,
    *,
    seed: Any = 0,
    guidance_scale: Any = None,
    steps: Any = FAST_STEPS,
    sampler: str = FAST_SAMPLER,
) -> Conditions:
    """Validate and normalise conditions; raises :class:`ExplorerInputError` naming the field.

    ``report``: statements joined with ``|`` (or newlines), or a list of statements; at least one non-empty.
    Age, sex and HR ranges are the model's own (:func:`diffusets_core.text.patient.encode_patient`: age 0–120 y,
    HR 20–300 bpm, sex M/F/male/female/1/0).
    """

    statements = _statements(report)
    if not statements:
        raise ExplorerInputError("report: empty; pick or type at least one statement (e.g. 'Sinus rhythm')")
    a, h = _number("age", age, "years"), _number("hr", hr, "bpm")
    if isinstance(sex, str) and sex.strip().lower() in ("m", "male", "f", "female"):
        sx = sex.strip().upper()[0]
    else:
        raise ExplorerInputError(f"sex: {sex!r} is not one of M, F (male, female)")
    try:
        encode_patient([sx], [a], [h], mode="paper")  # the model's own ranges, with messages that name the field
    except ValueError as exc:
        raise ExplorerInputError(str(exc)) from None
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise ExplorerInputError(f"seed: {seed!r} is not an integer") from None
    if s < 0:
        raise ExplorerInputError(f"seed: {s} must be ≥ 0")
    g = None
    if guidance_scale is not None:
        g = _number("guidance scale", guidance_scale, "×")
        if not GUIDANCE_RANGE[0] <= g <= GUIDANCE_RANGE[1]:
            raise ExplorerInputError(
                f"guidance scale: {g:g} is outside {GUIDANCE_RANGE[0]:g}–{GUIDANCE_RANGE[1]:g} (1 = no guidance)"
            )
    n = int(_number("steps", steps, "sampler steps"))
    if not STEPS_RANGE[0] <= n <= STEPS_RANGE[1]:
        raise ExplorerInputError(f"steps: {n} is outside {STEPS_RANGE[0]}–{STEPS_RANGE[1]}")
    return Conditions(statements, a, sx, h, s, g, n, sampler)


def measure_ecg(signal: np.ndarray, fs: float) -> dict[str, float]:
    """HR (bpm), PR, QRS, QT, QTc Bazett (ms) and QRS axis (degrees, -180..180) of one ``(12, L)`` mV ECG.

    Intervals and HR: the benchmark's :func:`~diffusets_core.eval.features.measure_record` (neurokit2 R peaks,
    median beat at 500 Hz; HR falls back to the cohort interpreter's normal-beat rate where the benchmark's
    R-peak detectors disagree); axis: the cohort interpreter's net QRS area in leads I and aVF. Unmeasurable
    values are NaN; ``reason`` says why (never raises).
    """

    row = measure_record(np.asarray(signal), fs, xqrs=False)
    out = {
        "hr": row["hr_nk"],
        "pr": row["pr_ms"],
        "qrs": row["qrs_ms"],
        "qt": row["qt_ms"],
        "qtc": row["qtc_bazett_ms"],
        "axis": math.nan,
    }
    m = _interpreter_measure(signal, fs)
    notes = [str(row.get("reason") or "")]
    if "error" not in m:
        out["axis"] = float(m.get("qrs_axis", math.nan))
        if not np.isfinite(out["hr"]) and np.isfinite(m.get("hr", math.nan)):
            # the benchmark leaves HR blank when its R-peak detectors disagree; the interpreter's normal-beat rate
            # is still what a reader of the print-out would count
            out["hr"] = float(m["hr"])
            notes.append("HR from the cohort interpreter's normal beats")
    else:
        notes.append(str(m["error"]))
    out = {k: float(v) if v is not None and np.isfinite(v) else math.nan for k, v in out.items()}
    out["reason"] = "; ".join(n for n in notes if n)
    return out


def _resampled(signal: np.ndarray, fs: float) -> np.ndarray:
    """``signal`` at the cohort interpreter's 500 Hz (FFT resampling, as the benchmark's P-wave measurement)."""
    from scipy.signal import resample

    sig = np.asarray(signal, dtype=np.float64)
    return resample(sig, int(round(sig.shape[-1] * COHORT_FS / fs)), axis=-1)


def _interpreter_measure(signal: np.ndarray, fs: float) -> dict:

    try:
        return measure(_resampled(signal, fs))
    except Exception as exc:  # noqa: BLE001 - a measurement failure is a result, not a crash
        return {"error": f"{type(exc).__name__}: {exc}"}


def read_ecg(signal: np.ndarray, fs: float) -> list[str]:
    """The embedded cohort's rule-based interpreter's statements for a ``(12, L)`` mV ECG (resampled to its
    500 Hz): what a machine report of this ECG would say."""

    try:
        return list(interpret(_resampled(signal, fs)).statements)
    except Exception as exc:  # noqa: BLE001
        return [f"Unreadable ECG ({type(exc).__name__})"]


def agreement(asked: Sequence[str], read: Sequence[str]) -> pd.DataFrame:
    """Per benchmark class (:data:`~diffusets_core.eval.taxonomy.EVAL_CLASSES`) named by the request or by the
    reading: ``class, asked, read, agree`` (bool columns)."""

    lab, names = labels_for_reports([list(asked), list(read)], None, EVAL_CLASSES)
    rows = [
        {"class": c, "asked": bool(lab[0, j]), "read": bool(lab[1, j])}
        for j, c in enumerate(names)
        if lab[0, j] or lab[1, j]
    ]
    table = pd.DataFrame(rows, columns=["class", "asked", "read"])
    table["agree"] = table["asked"] == table["read"]
    return table


@dataclass
class RealMatch:
    """The training ECG whose report is closest to the request: ``signal`` ``(12, L)`` mV; ``similarity`` is the
    cosine similarity of the two reports' text embeddings (1 = the same report)."""

    record_id: str
    report: str
    age: float
    sex: str
    hr: float
    similarity: float
    signal: np.ndarray
    fs: float

    def label(self) -> str:
        return (
            f"real training ECG {self.record_id} | {self.report.replace('|', ' / ')} | {self.sex}, "
            f"{self.age:.0f} y, HR {self.hr:.0f} | report similarity {self.similarity:.2f}"
        )


#: the columns :meth:`Explorer.reference_choices` lists
REFERENCE_COLUMNS = ("record_id", "subject_id", "report", "age", "sex", "hr")


@dataclass
class ReferenceECG:
    """The patient's own earlier ECG a twin model reads (:mod:`diffusets_core.models.twin`).

    ``signal`` ``(12, L)`` mV at ``fs`` Hz (``None`` for a WFDB record given by path: the pipeline reads the file);
    ``source`` what the pipeline is given (the signal, or the path). A record of a prepared run
    (:meth:`from_run`) carries its ``record_id``, ``run_dir``, report, age, sex and heart rate; a plain array or
    path (:meth:`given`) only a name."""

    record_id: str
    signal: np.ndarray | None
    fs: float
    source: Any
    report: str = ""
    age: float = math.nan
    sex: str = ""
    hr: float = math.nan
    run_dir: str = ""

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, record_id: Any) -> ReferenceECG:
        """Record ``record_id`` of the prepared run ``run_dir`` (its stored signal,
        :func:`~diffusets_core.data.reference_ecg.reference_from_run`, and its manifest row). Raises
        :class:`ExplorerInputError` naming the id and the run when the run does not hold it."""
        try:
            signal = reference_from_run(run_dir, record_id)
        except (ReferenceNotFoundError, FileNotFoundError) as exc:
            raise ExplorerInputError(f"reference: {exc}") from None
        store = SignalStore(run_dir)
        row = store.manifest.set_index("record_id").loc[str(record_id)]
        return cls(
            str(record_id),
            signal,
            store.fs,
            signal,
            str(row["report"]),
            float(row["age"]),
            str(row["sex"]),
            float(row["hr"]),
            str(run_dir),
        )

    @classmethod
    def given(cls, source: Any, fs: float) -> ReferenceECG:
        """A reference given as the pipeline takes it: a ``(12, L)`` / ``(1, 12, L)`` mV array at ``fs`` Hz (named
        ``array``) or a WFDB record path (named by it; no signal here: the pipeline reads and prepares the file)."""
        if isinstance(source, np.ndarray):
            one = source[0] if source.ndim == 3 and len(source) == 1 else source
            return cls("array", one if one.ndim == 2 else None, fs, source)
        return cls(str(source), None, fs, source)

    def label(self) -> str:
        """One line for titles and the summary: which reference, and (a run's record) its report and patient."""
        if not self.report:
            return f"reference {self.record_id}"
        return (
            f"reference {self.record_id} | {self.report.replace('|', ' / ')} | {self.sex}, {self.age:.0f} y, "
            f"HR {self.hr:.0f}"
        )


@dataclass
class ExplorerResult:
    """One generated ECG and what was read off it. ``signal`` ``(12, L)`` mV at ``fs`` Hz; ``measurements`` as
    :func:`measure_ecg`; ``reading`` the interpreter's statements; ``agreement`` as :func:`agreement`;
    ``seconds``: wall time of ``generate`` and ``measure``; ``reference``: the reference ECG the twin read (None:
    none)."""

    conditions: Conditions
    signal: np.ndarray
    fs: float
    measurements: dict[str, Any]
    reading: list[str]
    agreement: pd.DataFrame
    nearest: RealMatch | None
    output: Any = None  # the pipeline's GenerationOutput (for export)
    seconds: dict[str, float] = field(default_factory=dict)
    reference: ReferenceECG | None = None

    def figure(self, **kw: Any):
        """The ECG on standard paper (25 mm/s, 10 mm/mV, 3×4 + lead II rhythm strip)."""
        title = f"generated | {self.conditions.label()}"
        if self.reference is not None:
            title += f" | {self.reference.record_id} as reference"
        return plot_12lead(self.signal, self.fs, title=title, **kw)

    def reference_figure(self, **kw: Any):
        """The reference ECG on the same paper (``None`` without a reference, or for one given by path)."""
        if self.reference is None or self.reference.signal is None:
            return None
        return plot_12lead(self.reference.signal, self.reference.fs, title=self.reference.label(), **kw)

    def nearest_figure(self, **kw: Any):
        """The closest real training ECG on the same paper (``None`` when the run has no training records)."""

        if self.nearest is None:
            return None
        return plot_12lead(self.nearest.signal, self.nearest.fs, title=self.nearest.label(), **kw)

    def measurement_table(self) -> pd.DataFrame:
        """``measurement, value, unit`` rows (value NaN where not measurable)."""
        return pd.DataFrame(
            [
                {"measurement": lab, "value": self.measurements.get(k, math.nan), "unit": unit}
                for k, (lab, unit) in MEASUREMENTS.items()
            ]
        )

    def matched(self) -> bool:
        """Does the interpreter's reading name every requested class (and no other)?"""
        return bool(len(self.agreement)) and bool(self.agreement["agree"].all())

    def summary_html(self) -> str:
        """Measurements, reading and agreement as a small HTML block (for the widget and the book)."""
        import html

        vals = " · ".join(
            f"<b>{lab}</b> {_fmt(self.measurements.get(k))} {unit}" for k, (lab, unit) in MEASUREMENTS.items()
        )
        agree = (
            ", ".join(
                f"{'✓' if r.agree else '✗'} {r['class']} ({'asked' if r.asked else 'not asked'}, "
                f"{'read' if r.read else 'not read'})"
                for _, r in self.agreement.iterrows()
            )
            or "no class"
        )
        why = self.measurements.get("reason")
        ref = "" if self.reference is None else f"<p>Reference ECG: {html.escape(self.reference.label())}</p>"
        return (
            f"<div class='diffusets-explorer-summary'>{ref}<p>Measured: {vals}"
            + (f" <i>({html.escape(str(why))})</i>" if why else "")
            + "</p>"
            f"<p>Interpreter's reading: <i>{html.escape(' / '.join(self.reading))}</i></p>"
            f"<p>Requested classes vs reading: {html.escape(agree)}</p>"
            f"<p><small>generated in {self.seconds.get('generate', math.nan):.2f} s, measured in "
            f"{self.seconds.get('measure', math.nan):.2f} s ({self.conditions.sampler}, {self.conditions.steps} "
            f"steps, guidance {_fmt(self.output.conditions['guidance_scale'].iloc[0] if self.output is not None else self.conditions.guidance_scale, '.1f')})"
            "</small></p></div>"
        )

    def save(self, out_dir: str | os.PathLike, formats: Sequence[str] = ("wfdb", "png")) -> list[Path]:
        """Write the ECG with :func:`diffusets_core.generate.writer.export_batch` (WFDB header comments carry the
        conditions, seed and model) into ``out_dir/<report-slug>_<sex><age>_hr<hr>_seed<seed>/``; returns the files."""

        if self.output is None:
            raise ExplorerInputError("nothing to save: this result has no generation output")
        c = self.conditions
        slug = "".join(ch if ch.isalnum() else "_" for ch in c.report.lower())[:48].strip("_")
        d = Path(out_dir) / f"{slug}_{c.sex}{c.age:.0f}_hr{c.hr:.0f}_seed{c.seed}"
        names = export_batch(self.output, d, formats=formats, plot=plot_12lead)
        return sorted(p for p in d.iterdir() if p.stem in names)


def _fmt(v: Any, spec: str = ".0f") -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    return format(x, spec) if math.isfinite(x) else "–"


class Explorer:
    """Generate-and-measure for one trained run. Build with :meth:`from_run`; call :meth:`explore`."""

    def __init__(
        self,
        pipe: Any,
        records: pd.DataFrame | None = None,
        signals: Any = None,
        vectors: np.ndarray | None = None,
        fs: float | None = None,
        run_dir: str | os.PathLike | None = None,
    ):
        """``pipe``: a :class:`~diffusets_core.diffusion.pipeline.DiffuSETSPipeline` (or anything with its call
        signature and ``embed_reports``); ``records``/``signals``/``vectors``: the real ECGs to compare with
        (rows aligned; ``vectors`` their report embeddings) — optional; ``run_dir``: the run they come from (where
        the widget lists a twin run's reference ECGs)."""
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.pipe = pipe
        self.records = records.reset_index(drop=True) if records is not None else None
        self.signals = signals
        self.vectors = None if vectors is None else l2_normalize(np.asarray(vectors, dtype=np.float32))
        self.fs = float(fs if fs is not None else getattr(pipe, "fs", MODEL_FS))

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike,
        *,
        device: str = "cpu",
        split: str = "train",
        pipe: Any = None,
        **pipe_kwargs: Any,
    ) -> Explorer:
        """The run's pipeline (its validated guidance) and its ``split`` ECGs with their report embeddings."""

        run_dir = Path(run_dir)
        if pipe is None:
            pipe = DiffuSETSPipeline.from_pretrained(run_dir, device=device, **pipe_kwargs)
        store = SignalStore(run_dir)
        recs = store.records(split)
        ids, vectors, _ = load_run_embeddings(run_dir)
        pos = {r: i for i, r in enumerate(ids)}
        vec = vectors[[pos[r] for r in recs["record_id"].astype(str)]]
        return cls(pipe, recs, store.signals(split), vec, store.fs, run_dir)

    @staticmethod
    def reference_choices(
        run_dir_or_store: str | os.PathLike | SignalStore, split: str = "test", limit: int | None = 200
    ) -> pd.DataFrame:
        """The records of a (twin) run's ``split`` a user may take as the reference ECG: columns
        :data:`REFERENCE_COLUMNS` (``record_id``, ``subject_id``, ``report``, ``age``, ``sex``, ``hr``), in the
        manifest's order, the first ``limit`` (None: all). The test split by default: subjects neither the base
        model nor the twin was trained on. Raises FileNotFoundError when the run holds no prepared data."""
        store = run_dir_or_store if isinstance(run_dir_or_store, SignalStore) else SignalStore(run_dir_or_store)
        recs = store.records(split).loc[:, list(REFERENCE_COLUMNS)]
        recs["record_id"] = recs["record_id"].astype(str)
        return recs.head(limit).reset_index(drop=True) if limit is not None else recs

    # -- choices for the widget ------------------------------------------------------------------------------
    def statements(self, limit: int | None = None) -> list[str]:
        """Distinct statements of the comparison records' reports, most frequent first."""
        if self.records is None:
            return []
        counts = self.records["report"].astype(str).str.split("|").explode().str.strip()
        counts = counts[counts != ""].value_counts()
        return counts.index[:limit].tolist()

    def guidance_scale(self) -> float:
        """The run's validated guidance scale (what ``guidance_scale=None`` uses)."""
        return float(getattr(self.pipe, "sampling", {}).get("guidance_scale", 1.0))

    # -- the call ---------------------------------------------------------------------------------------------
    def nearest(self, report: str, age: float, sex: str, hr: float) -> RealMatch | None:
        """The comparison record whose report embedding is closest (cosine) to ``report``'s; among equally close
        reports (within 1e-4), the one nearest in HR (bpm/10), age (years/20) and sex."""
        if self.records is None or self.vectors is None or not len(self.records):
            return None
        q = l2_normalize(np.asarray(self.pipe.embed_reports([report]), dtype=np.float32))[0]
        sim = self.vectors @ q
        best = np.flatnonzero(sim >= sim.max() - 1e-4)
        r = self.records.iloc[best]
        dist = (
            np.abs(r["hr"].to_numpy(float) - hr) / 10
            + np.abs(r["age"].to_numpy(float) - age) / 20
            + (r["sex"].astype(str).to_numpy() != sex)
        )
        i = int(best[int(np.argmin(dist))])
        row = self.records.iloc[i]
        return RealMatch(
            str(row["record_id"]),
            str(row["report"]),
            float(row["age"]),
            str(row["sex"]),
            float(row["hr"]),
            float(sim[i]),
            np.asarray(self.signals[i], dtype=np.float32),
            self.fs,
        )

    def explore(
        self,
        report: str | Sequence[str] | None,
        age: Any = 60,
        sex: Any = "M",
        hr: Any = 75,
        *,
        seed: Any = 0,
        guidance_scale: Any = None,
        steps: Any = FAST_STEPS,
        sampler: str = FAST_SAMPLER,
        compare: bool = True,
        reference: Any = None,
    ) -> ExplorerResult:
        """Generate one ECG for the conditions and read it. Raises :class:`ExplorerInputError` for bad input
        (before any generation); everything else (the model, the measurements) is the package's own.

        ``reference`` (a twin model only): the patient's own earlier ECG, a :class:`ReferenceECG` (e.g.
        ``ReferenceECG.from_run(twin_dir, record_id)``) or what the pipeline takes (a ``(12, L)`` mV array at the
        model's rate, a WFDB record path). The pipeline's refusal (a model without a reference encoder, a wrong
        shape, missing leads, an unreadable file) becomes an :class:`ExplorerInputError` with its message."""
        c = check_conditions(
            report, age, sex, hr, seed=seed, guidance_scale=guidance_scale, steps=steps, sampler=sampler
        )
        ref = reference
        if ref is not None and not isinstance(ref, ReferenceECG):
            ref = ReferenceECG.given(ref, self.fs)
        twin = {} if ref is None else {"reference": ref.source}  # a pipeline without twins never sees the keyword
        t0 = time.perf_counter()
        try:
            out = self.pipe(
                c.report,
                age=c.age,
                sex=c.sex,
                hr=c.hr,
                seed=c.seed,
                guidance_scale=c.guidance_scale,
                num_inference_steps=c.steps,
                sampler=c.sampler,
                **twin,
            )
        except (ValueError, RecordError) as exc:  # the pipeline's own checks (guidance, the reference, its file)
            raise ExplorerInputError(str(exc)) from None
        t1 = time.perf_counter()
        sig = np.asarray(out.signals[0], dtype=np.float32)
        meas = measure_ecg(sig, out.fs)
        reading = read_ecg(sig, out.fs)
        t2 = time.perf_counter()
        near = self.nearest(c.report, c.age, c.sex, c.hr) if compare else None
        return ExplorerResult(
            c,
            sig,
            float(out.fs),
            meas,
            reading,
            agreement(c.statements, reading),
            near,
            out,
            {"generate": t1 - t0, "measure": t2 - t1, "compare": time.perf_counter() - t2},
            ref,
        )


#: inputs the explorer must refuse with a message (name -> changes to a valid example's conditions)
BAD_INPUTS = {
    "empty report": dict(report=" | "),
    "age 400": dict(age=400),
    "unknown sex": dict(sex="X"),
    "HR 5 bpm": dict(hr=5),
    "HR 'fast'": dict(hr="fast"),
}


def bad_input_messages(
    explorer: Explorer, example: dict, *, seed: int, steps: int, sampler: str, bad: dict | None = None
) -> pd.DataFrame:
    """Each bad input (``example`` changed as :data:`BAD_INPUTS` says) through :meth:`Explorer.explore`: columns
    ``input`` and ``message`` (the :class:`ExplorerInputError` text, or ``(accepted)``)."""
    messages = []
    for what, change in (BAD_INPUTS if bad is None else bad).items():
        try:
            explorer.explore(**dict(example, **change), seed=seed, steps=steps, sampler=sampler)
            messages.append({"input": what, "message": "(accepted)"})
        except ExplorerInputError as exc:
            messages.append({"input": what, "message": str(exc)})
    return pd.DataFrame(messages)
