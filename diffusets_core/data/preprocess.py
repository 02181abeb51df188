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
* **Heart rate.** ``60000 / rr_interval_ms`` when 300 <= rr <= 1500 ms (the rule the
  reference code intended; it compared seconds with milliseconds and so never used it).
  Otherwise R peaks are detected with neurokit2 on the original-rate window, lead II
  first, then the other leads in canonical order; HR = 60 / mean RR. ``hr_source``
  records which path was taken. No plausible HR -> refused.
* **Demographics.** Age must be known and within ``age_range`` years, sex ``M``/``F``:
  the generator is conditioned on both, so a record missing either is refused.
* **Report.** An empty report is refused when ``require_report`` (default), since the
  model is conditioned on text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .leads import CANONICAL_LEADS
from .records import RecordRef
from .wfdb_io import ECGRecord, RecordError, read_record

__all__ = [
    "PreprocessConfig",
    "ProcessedRecord",
    "SkipRecord",
    "process_ref",
    "preprocess_signal",
    "interpolate_gaps",
    "heart_rate_from_rr",
    "heart_rate_from_rpeaks",
    "validate_demographics",
]

RR_PLAUSIBLE_MS = (300.0, 1500.0)


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
    hr_range: tuple[float, float] = (20.0, 300.0)  # plausible bpm, for either HR path
    age_range: tuple[float, float] = (0.0, 120.0)
    require_report: bool = True
    verify_checksums: bool = True

    @property
    def out_fs(self) -> float:
        return self.out_len / self.window_s

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        d = dict(d)
        for key in ("hr_range", "age_range"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)


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
                f"lead {lead} has a gap of {longest / fs:.3f} s of missing samples (max {max_gap_s:g} s)",
            )
        out[m, col] = np.interp(t[m], t[~m], signal[~m, col])
    return out


def heart_rate_from_rr(rr_interval_ms: float | None) -> float | None:
    """HR (bpm) from a machine RR interval in ms, if 300 <= rr <= 1500, else None."""
    if rr_interval_ms is None or not np.isfinite(rr_interval_ms):
        return None
    lo, hi = RR_PLAUSIBLE_MS
    if lo <= rr_interval_ms <= hi:
        return 60000.0 / float(rr_interval_ms)
    return None


def heart_rate_from_rpeaks(
    signal: np.ndarray, fs: float, hr_range: tuple[float, float] = (20.0, 300.0)
) -> tuple[float | None, str]:
    """HR from neurokit2 R-peak detection: lead II first, then the other leads.

    Returns (hr, lead used) or (None, "") when no lead gives >= 3 peaks and a plausible HR.
    """
    import warnings

    import neurokit2 as nk  # imported only on this (rare) path: it is slow to import

    order = [1] + [i for i in range(signal.shape[1]) if i != 1]
    for col in order:
        x = signal[:, col]
        if not np.isfinite(x).all() or np.ptp(x) == 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cleaned = nk.ecg_clean(x, sampling_rate=int(round(fs)))
                _, info = nk.ecg_peaks(cleaned, sampling_rate=int(round(fs)), method="neurokit")
        except Exception:  # neurokit raises on flat/odd signals; try the next lead
            continue
        peaks = np.asarray(info.get("ECG_R_Peaks", []), dtype=float)
        if peaks.size < 3:
            continue
        hr = 60.0 / float(np.mean(np.diff(peaks) / fs))
        if hr_range[0] <= hr <= hr_range[1]:
            return hr, CANONICAL_LEADS[col] if signal.shape[1] == 12 else str(col)
    return None, ""


def preprocess_signal(record: ECGRecord, config: PreprocessConfig) -> np.ndarray:
    """The ``(n_window, 12)`` float64 window at the source rate: cropped, gap-filled, filtered."""
    fs = record.fs
    n_win = int(round(config.window_s * fs))
    if record.n_samples < n_win:
        raise SkipRecord(
            "too_short",
            f"record is {record.n_samples / fs:.2f} s long, shorter than the {config.window_s:g} s window",
        )
    x = interpolate_gaps(record.signal[:n_win], fs, config.max_gap_s, config.max_nan_fraction)
    if config.baseline_removal:
        from scipy.signal import butter, sosfiltfilt

        sos = butter(2, config.baseline_cutoff_hz, btype="highpass", fs=fs, output="sos")
        x = sosfiltfilt(sos, x, axis=0)
    return x


def process_ref(ref: RecordRef, config: PreprocessConfig) -> ProcessedRecord:
    """Read, check and preprocess one record. Never raises for bad data: skips instead."""
    from scipy.signal import resample

    if ref.skip_reason:
        return ProcessedRecord("skipped", f"metadata: {ref.skip_reason}")
    try:
        age, sex = validate_demographics(ref, config)
        if config.require_report and not ref.report.strip():
            raise SkipRecord("no_report", "empty report (the model is conditioned on text)")
        try:
            record = read_record(ref.path, expected_fs=config.expected_fs, verify_checksums=config.verify_checksums)
        except RecordError as exc:
            raise SkipRecord(exc.kind, str(exc)) from exc
        window = preprocess_signal(record, config)
        hr = heart_rate_from_rr(ref.rr_interval_ms)
        hr_source = "rr_interval"
        if hr is None:
            hr, lead = heart_rate_from_rpeaks(window, record.fs, config.hr_range)
            hr_source = "rpeaks"
            if hr is None:
                raise SkipRecord(
                    "heart_rate",
                    f"no plausible heart rate: rr_interval {ref.rr_interval_ms} ms outside "
                    f"{RR_PLAUSIBLE_MS[0]:g}-{RR_PLAUSIBLE_MS[1]:g} ms and no lead gave R peaks at "
                    f"{config.hr_range[0]:g}-{config.hr_range[1]:g} bpm",
                )
        elif not config.hr_range[0] <= hr <= config.hr_range[1]:
            raise SkipRecord("heart_rate", f"heart rate {hr:.1f} bpm outside {config.hr_range}")
        signal = resample(window, config.out_len, axis=0).T.astype(np.float32)
        if not np.isfinite(signal).all():
            raise SkipRecord("missing_samples", "non-finite values after resampling")
    except SkipRecord as exc:
        return ProcessedRecord("skipped", f"{exc.kind}: {exc}")
    notes = {"hr_lead": lead} if hr_source == "rpeaks" else {}
    return ProcessedRecord("ok", "", np.ascontiguousarray(signal), float(hr), hr_source, age, sex, notes)
