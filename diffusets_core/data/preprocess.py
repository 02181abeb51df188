"""Turning one source record into a training example: ``(12, out_len)`` float32 mV + HR.

Rules (each refusal is a skip with a reason, never a silent drop):

* **Window.** The first ``window_s`` seconds are used; a longer record (PTB Diagnostic is
  38.4 s) is cropped at the start, not centred or tiled, so that the stored example is
  the beginning of the recording and the choice does not depend on its length. A record
  shorter than ``window_s`` is refused.
* **Resampling.** The window is resampled to ``out_len`` samples with FFT resampling
  (``scipy.signal.resample``), as the paper did: 10 s -> 1024 samples = 102.4 Hz. With
  ``expected_fs=None`` any source rate is accepted; otherwise other rates are refused.
* **Missing samples.** NaN runs up to ``max_gap_s`` are linearly interpolated (edges held
  at the nearest sample); a longer gap, or a lead with more than ``max_nan_fraction``
  missing, refuses the record (the reference silently set NaN to 0 mV).
* **Baseline.** Off by default (the paper did none). When on: zero-phase 2nd-order
  Butterworth high-pass at ``baseline_cutoff_hz`` = 0.5 Hz (``sosfiltfilt``); zero phase
  keeps the ST segment undistorted, which a causal filter at this cutoff would not.
* **Implausible signals.** On the window at the source rate, before gap filling: a lead
  whose samples stay exactly equal for longer than ``max_flat_s`` (1 s; a whole flat lead is
  a disconnected electrode, a long constant run a lead-off or a saturated amplifier) is
  refused like a lead with missing samples (kind ``flat_lead``). After gap filling, a lead
  spanning more than ``max_amplitude_mv`` = 20 mV peak to peak, or a record whose largest
  lead spans less than ``min_amplitude_mv`` = 0.1 mV, is refused (kind ``amplitude``): surface
  ECG QRS complexes are a few mV (voltage criteria for LV hypertrophy sit at 3.5-4.5 mV) and
  electrocardiographs need only a +-5 mV input range (IEC 60601-2-25), so 20 mV means wrong
  units (microvolts under an "mV" label read 1000x too large) or artefact, and a 12-lead ECG
  with no lead above 0.1 mV means volts labelled mV or no signal.
* **Heart rate.** ``60000 / rr_interval_ms`` when the machine RR lies within the RR range of
  ``hr_range`` (20-300 bpm -> 200-3000 ms). (The reference code intended 300-1500 ms and
  compared seconds with milliseconds, so never used it; 300-1500 ms would also throw away
  every rate above 200 bpm.) Otherwise R peaks are found on the original-rate window, lead
  II first, then the other leads in canonical order, by :func:`.heartrate.consensus_heart_rate`
  (neurokit2, XQRS and Engzee must agree; neurokit2's default 0.3 s refractory period would
  halve rates above 200 bpm). ``hr_source`` records which path was taken. No agreed rate
  within ``hr_range`` -> refused with each lead's reason.
* **Demographics.** Age must be known and within ``age_range`` years, sex ``M``/``F``:
  the generator is conditioned on both, so a record missing either is refused.
* **Report.** An empty report is refused when ``require_report`` (default), since the
  model is conditioned on text; so is a statement that is only numeric codes (``426783006``,
  as Challenge 2020/2021 ``#Dx`` lines hold SNOMED CT ids): codes must be mapped to text first.
* **Order.** Metadata are checked before the signal is read, except for records whose
  metadata come from their own header (WFDB folders): those are read first, so a header that
  cannot be parsed is reported as such, not as missing demographics.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .heartrate import consensus_heart_rate
from .leads import CANONICAL_LEADS
from .records import RecordRef
from .wfdb_io import ECGRecord, RecordError, read_record

__all__ = [
    "PreprocessConfig",
    "ProcessedRecord",
    "SkipRecord",
    "process_ref",
    "preprocess_signal",
    "resample_window",
    "interpolate_gaps",
    "heart_rate_from_rr",
    "heart_rate_from_rpeaks",
    "measure_heart_rate",
    "check_flat_leads",
    "check_amplitude",
    "check_report",
    "validate_demographics",
    "format_duration",
]

HR_RANGE = (20.0, 300.0)
RR_PLAUSIBLE_MS = (60000.0 / HR_RANGE[1], 60000.0 / HR_RANGE[0])  # (200, 3000) ms
_CODE_STATEMENT = re.compile(r"^\s*\d{5,}(?:\s*[,;/]\s*\d{5,})*\s*$")


#: Sampling rate (Hz) of every signal the models see: 10 s resampled to 1024 samples (paper, Sec. 3.1).
MODEL_FS: float = 102.4


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing parameters; stored in ``data/prepare.json``."""

    out_len: int = 1024
    window_s: float = 10.0
    expected_fs: float | None = None  # None: accept any rate (it is resampled anyway)
    baseline_removal: bool = False
    baseline_cutoff_hz: float = 0.5
    max_gap_s: float = 0.2  # longest NaN run that is interpolated
    max_nan_fraction: float = 0.05  # per lead
    hr_range: tuple[float, float] = HR_RANGE  # plausible bpm, for either HR path
    max_flat_s: float = 1.0  # longest run of exactly equal samples in one lead
    max_amplitude_mv: float = 20.0  # per-lead peak-to-peak limit
    min_amplitude_mv: float = 0.1  # the largest lead must span at least this
    age_range: tuple[float, float] = (0.0, 120.0)
    require_report: bool = True
    verify_checksums: bool = True

    @property
    def out_fs(self) -> float:
        return self.out_len / self.window_s

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        d = dict(d)
        for key in ("hr_range", "age_range"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def format_duration(n_samples: int, fs: float, min_decimals: int = 2) -> str:
    """``"<seconds> s (<n> samples at <fs> Hz)"``: a length as skip reasons print it.

    Seconds get ``min_decimals`` decimals, or as many more (up to 6) as the exact value needs, so a length
    is never rounded onto a limit it misses: 4999 samples at 500 Hz print ``9.998 s``, not ``10.00 s``.
    """
    return f"{_seconds_text(n_samples / fs, min_decimals)} s ({int(n_samples)} samples at {fs:g} Hz)"


def _seconds_text(seconds: float, min_decimals: int = 2) -> str:
    for decimals in range(min_decimals, max(min_decimals, 6) + 1):
        text = f"{seconds:.{decimals}f}"
        if abs(float(text) - seconds) < 1e-9:
            break
    return text


class SkipRecord(Exception):
    """Raised inside preprocessing with a category (``kind``) and a readable reason."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass
class ProcessedRecord:
    """The outcome for one RecordRef (picklable; crosses process boundaries)."""

    status: str  # "ok" | "skipped"
    reason: str = ""  # "<kind>: <message>" for skipped records
    signal: np.ndarray | None = None  # (12, out_len) float32 mV
    hr: float | None = None
    hr_source: str = ""
    age: float | None = None
    sex: str | None = None
    notes: dict = field(default_factory=dict)
    manifest_notes: list[str] = field(default_factory=list)  # written to the manifest's notes column

    @property
    def reason_kind(self) -> str:
        return self.reason.split(":", 1)[0] if self.reason else ""


def validate_demographics(ref: RecordRef, config: PreprocessConfig) -> tuple[float, str]:
    """Checked (age, sex) or SkipRecord."""
    lo, hi = config.age_range
    if ref.age is None or ref.sex is None:
        why = ref.extra.get("demographics_missing")
        missing = [n for n, v in (("age", ref.age), ("sex", ref.sex)) if v is None]
        raise SkipRecord("demographics", why or f"{' and '.join(missing)} unknown (conditioning needs age and sex)")
    age = float(ref.age)
    if not np.isfinite(age) or not lo <= age <= hi:
        raise SkipRecord("demographics", f"age {ref.age} outside {lo:g}-{hi:g} years")
    if ref.sex not in ("M", "F"):
        raise SkipRecord("demographics", f"sex {ref.sex!r} is not M/F")
    return age, ref.sex


def _nan_runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of runs of True in a 1-D boolean mask."""
    if not mask.any():
        return np.zeros(0, dtype=int)
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return edges[1::2] - edges[0::2]


def interpolate_gaps(signal: np.ndarray, fs: float, max_gap_s: float, max_nan_fraction: float) -> np.ndarray:
    """Linearly fill short NaN gaps in a ``(n, 12)`` signal; SkipRecord for long/mostly-missing."""
    nan = np.isnan(signal)
    if not nan.any():
        return signal
    out = signal.copy()
    n = signal.shape[0]
    max_gap = max_gap_s * fs
    t = np.arange(n)
    for col in np.flatnonzero(nan.any(axis=0)):
        lead = CANONICAL_LEADS[col] if signal.shape[1] == len(CANONICAL_LEADS) else str(col)
        m = nan[:, col]
        frac = m.mean()
        if frac > max_nan_fraction:
            raise SkipRecord("missing_samples", f"lead {lead} is {frac:.0%} missing (max {max_nan_fraction:.0%})")
        longest = _nan_runs(m).max()
        if longest > max_gap:
            raise SkipRecord(
                "missing_samples",
                f"lead {lead} has a gap of {format_duration(longest, fs, 3)} of missing samples (max {max_gap_s:g} s)",
            )
        out[m, col] = np.interp(t[m], t[~m], signal[~m, col])
    return out


def heart_rate_from_rr(rr_interval_ms: float | None, hr_range: tuple[float, float] = HR_RANGE) -> float | None:
    """HR (bpm) = 60000 / rr from a machine RR interval in ms, if the rate is within ``hr_range``.

    The default 20-300 bpm accepts 200 <= rr <= 3000 ms; anything else (missing, NaN, 0, an RR
    in seconds) gives None and the caller measures R peaks instead.
    """
    if rr_interval_ms is None or not np.isfinite(rr_interval_ms) or rr_interval_ms <= 0:
        return None
    lo, hi = 60000.0 / hr_range[1], 60000.0 / hr_range[0]
    if lo <= rr_interval_ms <= hi:
        return 60000.0 / float(rr_interval_ms)
    return None


def measure_heart_rate(
    signal: np.ndarray, fs: float, hr_range: tuple[float, float] = HR_RANGE
) -> tuple[float | None, str, str]:
    """HR of a ``(n, 12)`` window from agreeing R-peak detectors: lead II first, then the others.

    Returns ``(hr, lead, reason)``: ``(None, "", reason)`` when no lead gives an agreed rate
    within ``hr_range``; the reason lists what each tried lead gave (see :mod:`.heartrate`).
    """
    order = [1] + [i for i in range(signal.shape[1]) if i != 1]
    why = []
    for col in order:
        name = CANONICAL_LEADS[col] if signal.shape[1] == 12 else str(col)
        res = consensus_heart_rate(signal[:, col], fs, hr_range=hr_range)
        if res.bpm is not None:
            return res.bpm, name, ""
        why.append(f"{name}: {res.reason}")
    return None, "", "; ".join(why[:3]) + (f"; ... ({len(why)} leads)" if len(why) > 3 else "")


def heart_rate_from_rpeaks(
    signal: np.ndarray, fs: float, hr_range: tuple[float, float] = HR_RANGE
) -> tuple[float | None, str]:
    """``(hr, lead used)`` from :func:`measure_heart_rate`, or ``(None, "")``."""
    hr, lead, _ = measure_heart_rate(signal, fs, hr_range)
    return hr, lead


def _longest_constant_run(x: np.ndarray) -> tuple[int, float]:
    """Length (samples) and value of the longest run of exactly equal consecutive samples."""
    same = np.diff(x) == 0  # NaN never equals: gaps are not "flat"
    runs = _nan_runs(same)
    if not runs.size:
        return 1, float(x[0]) if x.size else float("nan")
    padded = np.concatenate(([False], same, [False])).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    k = int(np.argmax(runs))
    return int(runs[k]) + 1, float(x[starts[k]])


def check_flat_leads(window: np.ndarray, fs: float, max_flat_s: float) -> None:
    """SkipRecord(``flat_lead``) if a lead of ``(n, 12)`` mV stays constant longer than ``max_flat_s``."""
    n = window.shape[0]
    for col in range(window.shape[1]):
        lead = CANONICAL_LEADS[col] if window.shape[1] == len(CANONICAL_LEADS) else str(col)
        length, value = _longest_constant_run(window[:, col])
        if length > max_flat_s * fs:
            if length >= n:
                raise SkipRecord(
                    "flat_lead",
                    f"lead {lead} is constant ({value:.3f} mV) for the whole "
                    f"{n / fs:g} s window (disconnected electrode?)",
                )
            raise SkipRecord(
                "flat_lead",
                f"lead {lead} is constant ({value:.3f} mV) for {format_duration(length, fs)} "
                f"(max {max_flat_s:g} s: lead off or saturated?)",
            )


def check_amplitude(window: np.ndarray, config: PreprocessConfig) -> None:
    """SkipRecord(``amplitude``) for a lead above ``max_amplitude_mv`` or a record below ``min_amplitude_mv``."""
    span = np.ptp(window, axis=0)
    k = int(np.argmax(span))
    lead = CANONICAL_LEADS[k] if window.shape[1] == len(CANONICAL_LEADS) else str(k)
    if span[k] > config.max_amplitude_mv:
        raise SkipRecord(
            "amplitude",
            f"lead {lead} spans {span[k]:.4g} mV peak to peak (max "
            f"{config.max_amplitude_mv:g} mV for a surface ECG): microvolts labelled mV, "
            "or artefact?",
        )
    if span[k] < config.min_amplitude_mv:
        raise SkipRecord(
            "amplitude",
            f"the largest lead ({lead}) spans only {span[k]:.4g} mV peak to peak (min "
            f"{config.min_amplitude_mv:g} mV): volts labelled mV, or no signal?",
        )


def preprocess_signal(record: ECGRecord, config: PreprocessConfig) -> np.ndarray:
    """The ``(n_window, 12)`` float64 window at the source rate: cropped, gap-filled, filtered."""
    fs = record.fs
    n_win = int(round(config.window_s * fs))
    if record.n_samples < n_win:
        raise SkipRecord(
            "too_short",
            f"record is {_seconds_text(record.n_samples / fs)} s long, shorter than the {config.window_s:g} s "
            f"window: {record.n_samples} samples at {fs:g} Hz, the window needs {n_win}",
        )
    check_flat_leads(record.signal[:n_win], fs, config.max_flat_s)
    x = interpolate_gaps(record.signal[:n_win], fs, config.max_gap_s, config.max_nan_fraction)
    check_amplitude(x, config)
    if config.baseline_removal:
        from scipy.signal import butter, sosfiltfilt  # on first use: `import diffusets_core.data` stays light

        sos = butter(2, config.baseline_cutoff_hz, btype="highpass", fs=fs, output="sos")
        x = sosfiltfilt(sos, x, axis=0)
    return x


def resample_window(window: np.ndarray, out_len: int) -> np.ndarray:
    """A ``(n_window, 12)`` window at the source rate -> ``(12, out_len)`` C-contiguous float32 mV.

    FFT resampling (``scipy.signal.resample``) of the whole window to ``out_len`` samples, as the paper did (10 s
    -> 1024 samples = 102.4 Hz); the step every prepared record and every reference read from a file goes through.
    """
    from scipy.signal import resample  # on first use: `import diffusets_core.data` stays light

    return np.ascontiguousarray(resample(window, out_len, axis=0).T.astype(np.float32))


def _read(ref: RecordRef, config: PreprocessConfig) -> ECGRecord:
    try:
        return read_record(ref.path, expected_fs=config.expected_fs, verify_checksums=config.verify_checksums)
    except RecordError as exc:
        raise SkipRecord(exc.kind, str(exc)) from exc


def check_report(report: str, config: PreprocessConfig) -> None:
    """SkipRecord for an empty report (when required) or a statement made only of numeric codes."""
    if config.require_report and not report.strip():
        raise SkipRecord(
            "no_report",
            "empty report (the model is conditioned on text; for a WFDB folder whose headers keep the report under "
            "another key: prepare --header-field report=KEY)",
        )
    for statement in report.split("|"):
        if _CODE_STATEMENT.match(statement):
            raise SkipRecord(
                "coded_report",
                f"statement {statement.strip()!r} is a diagnosis code, not text "
                "(give a code -> text mapping: prepare --code-map CSV)",
            )


def process_ref(ref: RecordRef, config: PreprocessConfig) -> ProcessedRecord:
    """Read, check and preprocess one record. Never raises for bad data: skips instead.

    Returns a :class:`ProcessedRecord`: ``ok`` with a ``(12, out_len)`` float32 mV signal, or
    ``skipped`` with ``"<kind>: <message>"`` naming the first real failure (see module doc).
    """
    if ref.skip_reason:
        return ProcessedRecord("skipped", f"{ref.extra.get('skip_kind', 'metadata')}: {ref.skip_reason}")
    record = None
    try:
        if ref.extra.get("meta_from_header") or ref.extra.get("header_error"):
            record = _read(ref, config)  # a bad header is the real failure, not the metadata it lacks
        age, sex = validate_demographics(ref, config)
        check_report(ref.report, config)
        if record is None:
            record = _read(ref, config)
        window = preprocess_signal(record, config)
        hr = heart_rate_from_rr(ref.rr_interval_ms, config.hr_range)
        hr_source = "rr_interval"
        if hr is None:
            hr, lead, why = measure_heart_rate(window, record.fs, config.hr_range)
            hr_source = "rpeaks"
            if hr is None:
                rr_lo, rr_hi = 60000.0 / config.hr_range[1], 60000.0 / config.hr_range[0]
                raise SkipRecord(
                    "heart_rate",
                    f"no plausible heart rate: rr_interval {ref.rr_interval_ms} ms outside "
                    f"{rr_lo:g}-{rr_hi:g} ms and no lead gave an agreed R-peak rate within "
                    f"{config.hr_range[0]:g}-{config.hr_range[1]:g} bpm ({why})",
                )
        signal = resample_window(window, config.out_len)
        if not np.isfinite(signal).all():
            raise SkipRecord("missing_samples", "non-finite values after resampling")
    except SkipRecord as exc:
        return ProcessedRecord("skipped", f"{exc.kind}: {exc}", manifest_notes=_notes(ref, record))
    notes = {"hr_lead": lead} if hr_source == "rpeaks" else {}
    return ProcessedRecord(
        "ok",
        "",
        np.ascontiguousarray(signal),
        float(hr),
        hr_source,
        age,
        sex,
        notes,
        manifest_notes=_notes(ref, record),
    )


def _notes(ref: RecordRef, record: ECGRecord | None) -> list[str]:
    out = [str(n) for n in ref.extra.get("notes", [])]
    if ref.extra.get("age_note"):
        out.append(str(ref.extra["age_note"]))
    if record is not None:
        out.extend(record.notes)
    return out
