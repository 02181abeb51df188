"""Feature-level evaluation: heart rate and ECG intervals measured on (generated) 12-lead ECGs.

Input convention: ``(N, 12, L)`` float32 in mV, leads in :data:`~diffusets_core.data.leads.CANONICAL_LEADS`
order, ``fs = 102.4`` Hz (10 s = 1024 samples) unless told otherwise.

What is measured, per record (one row of :func:`measure_features`):

* ``hr_xqrs`` — the paper's measurement (the authors' ``test_scripts/batch_hr_test.py``;
  book/reference_implementation.md#heart-rate-and-heart-age), for parity:
  ``wfdb.processing.XQRS`` at the native rate on lead 0, 1, ... 11, first lead with more than one beat,
  ``HR = 60 / mean(RR)``.
* ``hr_nk`` — neurokit2 R-peaks (``ecg_clean`` + ``ecg_peaks`` with a 0.18 s refractory period instead of the
  default 0.3 s, which halves every rate above 200 bpm) on the first lead of ``detect_leads`` that passes the
  beat-consistency gate, ``HR = 60 / mean(RR)``; kept only when
  :func:`~diffusets_core.data.heartrate.consensus_heart_rate` (neurokit2, XQRS and Engzee by agreement) on that lead
  agrees within 5 %, so a halved or doubled rate is reported as NaN with a reason, never scored.
* ``qrs_ms, pr_ms, qt_ms, qtc_bazett_ms, qtc_fridericia_ms`` — from a 12-lead **median beat** (internally at
  500 Hz): QRS on/offset from the spatial velocity of all 12 leads, T end by the tangent method (median of the
  three leads with the largest T waves), P onset by the tangent method in the lead with the largest P wave.
* ``t_amp_<lead>`` — signed T-wave peak amplitude (mV) relative to the PR-segment baseline, for ``t_leads``.
* ``st_<lead>`` — ST level (mV) at J + 60 ms relative to the PR-segment baseline, every lead.
* ``n_beats, rr_ms, rr_std_ms, beat_corr`` (median correlation of single beats with the median beat) and
  ``reason`` (``""`` when everything was measured; otherwise ``"; "``-joined reasons for each NaN).

Why 500 Hz internally: R-peak detection works at 102.4 Hz (neurokit2 and XQRS both recover simulated HR
within ~2 bpm, see the tests), but a sample is 9.8 ms there, so onsets/offsets found by thresholds and tangents
would be quantised to ±10 ms. The median beat is therefore built from the band-limited signal resampled by
``resample_poly(x, 625, 128)`` (102.4 Hz -> 500 Hz exactly). It cannot add information above the 51.2 Hz
Nyquist limit: interval precision is limited by the source rate, not by the interpolation.

A record where a step fails gets NaN for the affected fields and a reason; measurement never raises.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import butter, resample_poly, sosfiltfilt
from tqdm import tqdm

from ..data.heartrate import MIN_RR_S, consensus_heart_rate
from ..data.leads import CANONICAL_LEADS
from ..data.preprocess import MODEL_FS

log = logging.getLogger(__name__)

__all__ = [
    "FS",
    "FEATURE_COLUMNS",
    "hr_xqrs",
    "hr_neurokit",
    "RPeaks",
    "find_r_peaks",
    "median_beat",
    "median_beat_rate",
    "delineate_beat",
    "PLAUSIBLE",
    "measure_record",
    "measure_features",
    "hr_error",
    "interval_error",
]

FS = MODEL_FS  # the package's sampling rate (Hz)
INTERNAL_FS = 500.0
DEFAULT_T_LEADS = ("II", "V2", "V5")
DEFAULT_DETECT_LEADS = ("II", "I", "V5", "V6", "aVF", "V4", "V3", "V2", "V1", "III", "aVL", "aVR")
FLAT_STD_MV = 1e-3
MIN_BEAT_CORR = 0.6

#: plausibility windows (bpm, ms); values outside are reported as NaN with a reason
PLAUSIBLE = {"hr": (20.0, 300.0), "qrs_ms": (30.0, 250.0), "pr_ms": (50.0, 400.0), "qt_ms": (150.0, 750.0)}


def _columns(t_leads: Sequence[str]) -> list[str]:
    return (
        [
            "hr_xqrs",
            "hr_nk",
            "n_beats",
            "rr_ms",
            "rr_std_ms",
            "beat_corr",
            "qrs_ms",
            "pr_ms",
            "qt_ms",
            "qtc_bazett_ms",
            "qtc_fridericia_ms",
        ]
        + [f"t_amp_{ld}" for ld in t_leads]
        + [f"st_{ld}" for ld in CANONICAL_LEADS]
        + ["detect_lead", "reason"]
    )


FEATURE_COLUMNS = _columns(DEFAULT_T_LEADS)


# -- heart rate -------------------------------------------------------------------------------------------------
def hr_xqrs(sig: np.ndarray, fs: float = FS) -> tuple[float, str]:
    """The paper's HR: XQRS on leads 0..11 in order, first lead with > 1 beat, ``60 / mean(RR)``.

    Returns ``(hr, reason)``; ``(nan, reason)`` where the paper's script would have crashed
    (UnboundLocalError when no lead yields two beats).
    """
    import wfdb.processing  # the paper's detector, imported when used (heavy)

    sig = np.asarray(sig, dtype=np.float64)
    for lead in range(sig.shape[0]):
        x = sig[lead]
        if not np.all(np.isfinite(x)) or np.std(x) < FLAT_STD_MV:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xq = wfdb.processing.XQRS(sig=x, fs=fs)
                xq.detect(verbose=False)
            q = np.asarray(xq.qrs_inds)
        except Exception:  # noqa: BLE001 - a detector failure is a measurement failure, not an error
            continue
        if len(q) > 1:
            return float(60.0 / np.mean(np.diff(q) / fs)), ""
    return math.nan, "xqrs: no lead with more than one beat"


def _nk_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk  # heavy import: only where R peaks are detected

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleaned = nk.ecg_clean(x, sampling_rate=fs)
        # neurokit2's default refractory period (mindelay 0.3 s) cannot see beats above 200 bpm; 0.18 s reaches
        # 333 bpm but also lets a tall, peaked T wave count as a beat. Both passes run: the extra peaks of the
        # short pass are taken as beats only when they are about as tall as the others (a fast rhythm), not
        # when they are markedly smaller (T waves between the R peaks).
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
        _, info_fast = nk.ecg_peaks(cleaned, sampling_rate=fs, mindelay=MIN_RR_S)
    slow = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    fast = np.asarray(info_fast["ECG_R_Peaks"], dtype=np.int64)
    if len(slow) == 0 or len(fast) <= 1.2 * len(slow):
        return slow if len(slow) else fast
    near = np.abs(fast[:, None] - slow[None, :]).min(axis=1) <= 0.04 * fs
    extra = fast[~near]
    amp = np.abs(cleaned)
    if len(extra) and np.median(amp[extra]) >= 0.7 * np.median(amp[slow]):
        return fast
    return slow


def hr_neurokit(x: np.ndarray, fs: float = FS) -> tuple[float, np.ndarray, str]:
    """neurokit2 HR on one lead: ``(hr, r_peaks, reason)``."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return math.nan, np.zeros(0, np.int64), "non-finite samples"
    if np.std(x) < FLAT_STD_MV:
        return math.nan, np.zeros(0, np.int64), "flat signal"
    try:
        p = _nk_peaks(x, fs)
    except Exception as exc:  # noqa: BLE001
        return math.nan, np.zeros(0, np.int64), f"neurokit2 failed ({type(exc).__name__})"
    if len(p) < 2:
        return math.nan, p, "fewer than 2 R-peaks"
    return float(60.0 / np.mean(np.diff(p) / fs)), p, ""


# -- median beat -------------------------------------------------------------------------------------------------
def median_beat_rate(fs: float) -> float:
    """The rate (Hz) at which :func:`median_beat` builds the median beat of a record sampled at ``fs`` Hz: 500 Hz
    exactly from 102.4 Hz, ``fs`` itself from 250 Hz up, else about 500 Hz (a ratio with denominator <= 1000)."""
    if abs(fs - FS) < 1e-9:
        return INTERNAL_FS
    if fs >= 250:
        return fs
    fr = Fraction(INTERNAL_FS / fs).limit_denominator(1000)
    return fs * fr.numerator / fr.denominator


def _upsample(sig: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    if abs(fs - FS) < 1e-9:
        return resample_poly(sig, 625, 128, axis=-1), INTERNAL_FS
    if fs >= 250:
        return sig, fs
    fr = Fraction(INTERNAL_FS / fs).limit_denominator(1000)
    return resample_poly(sig, fr.numerator, fr.denominator, axis=-1), median_beat_rate(fs)


def _highpass(sig: np.ndarray, fs: float, hz: float) -> np.ndarray:
    if not hz:
        return sig
    sos = butter(2, hz, btype="highpass", fs=fs, output="sos")
    return sosfiltfilt(sos, sig, axis=-1)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1:
        return x
    return np.convolve(x, np.ones(n) / n, mode="same")


def _tangent_crossing(x: np.ndarray, peak: int, lo: int, hi: int, level: float, fs: float, after: bool) -> float | None:
    """Tangent method: the tangent at the steepest point of the wave's limb on one side of ``peak``
    (after it for a T end, before it for a P onset) intersected with the isoelectric ``level``.

    The limb is cut where the signal first returns to within 10 % of the wave amplitude from ``level`` so that
    a neighbouring wave (the next P after a T, the previous T before a P) cannot supply the steepest slope.
    """
    amp = x[peak] - level
    if amp == 0:
        return None
    d = np.gradient(x) * fs  # per second
    step = 1 if after else -1
    end = hi if after else lo
    i = peak
    while (i + step - end) * step < 0 and (x[i + step] - level) / amp > 0.1:
        i += step
    a, b = (peak + 1, i + 1) if after else (i, peak)
    if b - a < 2:
        return None
    idx = np.arange(a, b)
    slope = d[idx] * (-np.sign(amp) if after else np.sign(amp))
    k = int(np.argmax(slope))
    j, sj = idx[k], d[idx[k]]
    if slope[k] <= 0:
        return None
    return float(j + (level - x[j]) / sj * fs)


def _median_beat(
    sig: np.ndarray, peaks: np.ndarray, fs: float, pre: float, post: float
) -> tuple[np.ndarray | None, int]:
    a, b = int(round(pre * fs)), int(round(post * fs))
    ok = [p for p in peaks if p - a >= 0 and p + b <= sig.shape[-1]]
    if len(ok) < 3:
        return None, len(ok)
    beats = np.stack([sig[:, p - a : p + b] for p in ok])  # (B, 12, T)
    return np.median(beats, axis=0), len(ok)


def _beat_corr(x: np.ndarray, peaks: np.ndarray, fs: float, half: float = 0.12) -> float:
    """Median leave-one-out correlation of single beats (R ± ``half`` s) with the median of the OTHER beats.

    ~1 for an ECG, ~0 for noise. Leaving the beat out matters: with few beats a median template that includes
    the beat itself correlates with it even when the "beats" are noise.
    """
    h = int(round(half * fs))
    ok = [p for p in peaks if p - h >= 0 and p + h < len(x)]
    if len(ok) < 3:
        return math.nan
    beats = np.stack([x[p - h : p + h + 1] for p in ok])
    beats = beats - beats.mean(axis=1, keepdims=True)
    rs = []
    for i in range(len(beats)):
        med = np.median(np.delete(beats, i, axis=0), axis=0)
        den = np.linalg.norm(beats[i]) * np.linalg.norm(med)
        if den > 0:
            rs.append(float(beats[i] @ med / den))
    return float(np.median(rs)) if rs else math.nan


@dataclass(frozen=True)
class RPeaks:
    """R peaks of one record (:func:`find_r_peaks`): ``lead`` (the detection lead's name, ``None`` when no lead gave
    two R peaks), ``peaks`` (sample indices at the input rate), ``beat_corr`` (:func:`_beat_corr` on that lead),
    ``hr`` (bpm, ``60 / mean(RR)``) and ``reason`` (``""`` when the beats are usable; otherwise why not)."""

    lead: str | None
    peaks: np.ndarray
    beat_corr: float
    hr: float
    reason: str


def find_r_peaks(
    sig: np.ndarray, fs: float = FS, detect_leads: Sequence[str] = DEFAULT_DETECT_LEADS, highpass_hz: float = 0.5
) -> RPeaks:
    """R peaks of a ``(12, L)`` mV record (canonical lead order) as :func:`measure_record` finds them: neurokit2
    (:func:`hr_neurokit`) on the leads of ``detect_leads`` in order, the first whose single beats correlate with
    their median beat at least :data:`MIN_BEAT_CORR` (the beat-consistency gate that rejects noise), else the best.

    ``reason``: ``"no lead with 2 R-peaks"`` (``lead`` is ``None``) or ``"beats inconsistent ..."`` (the best lead
    failed the gate; its peaks are still returned). Never raises on a ``(12, L)`` finite array.
    """
    best = None
    for name in detect_leads:
        ld = CANONICAL_LEADS.index(name)
        hr, p, why = hr_neurokit(sig[ld], fs)
        if why:
            continue
        corr = _beat_corr(_highpass(sig[ld], fs, highpass_hz), p, fs)
        if best is None or (np.nan_to_num(corr, nan=-1) > np.nan_to_num(best[2], nan=-1)):
            best = (name, p, corr, hr)
        if np.isfinite(corr) and corr >= MIN_BEAT_CORR:
            break
    if best is None:
        return RPeaks(None, np.zeros(0, np.int64), math.nan, math.nan, "no lead with 2 R-peaks")
    name, peaks, corr, hr = best
    reason = ""
    if not (np.isfinite(corr) and corr >= MIN_BEAT_CORR):
        reason = f"beats inconsistent (median beat correlation {corr:.2f} < {MIN_BEAT_CORR}): noise?"
    return RPeaks(name, peaks, corr, hr, reason)


#: Window of :func:`median_beat` around the R peak (s): long enough for the P wave before and the T end after
MEDIAN_PRE_S, MEDIAN_POST_S = 0.4, 0.75


def median_beat(
    sig: np.ndarray,
    peaks: np.ndarray,
    fs: float = FS,
    *,
    lead: str,
    highpass_hz: float = 0.5,
    pre_s: float = MEDIAN_PRE_S,
    post_s: float = MEDIAN_POST_S,
) -> tuple[np.ndarray | None, float, int]:
    """The 12-lead median beat of a ``(12, L)`` mV record with R peaks ``peaks`` (samples at ``fs``, found on
    ``lead``): the record high-passed at ``highpass_hz``, resampled to about 500 Hz (:func:`_upsample`; a record at
    250 Hz or more stays at its rate), each R refined to the local extremum (within 30 ms) of ``lead`` with the
    sign of its median R, beats cut from ``pre_s`` before to ``post_s`` after the R, median per sample.

    Returns ``(beat (12, T) or None, its rate fsu (Hz), number of complete beats)``: ``None`` with fewer than 3
    complete beats. The R peak is at sample ``round(pre_s * fsu)``.
    """
    up, fsu = _upsample(_highpass(np.asarray(sig, dtype=np.float64), fs, highpass_hz), fs)
    pk_u = np.round(np.asarray(peaks) * fsu / fs).astype(np.int64)
    ld = CANONICAL_LEADS.index(lead)
    h = int(round(0.03 * fsu))
    inside = [p for p in pk_u if 0 <= p < up.shape[-1]]
    if not inside:
        return None, fsu, 0
    sgn = np.sign(np.median([up[ld, p] for p in inside]) or 1.0)
    pk_u = np.array([max(0, p - h) + int(np.argmax(sgn * up[ld, max(0, p - h) : p + h + 1])) for p in inside])
    mb, nb = _median_beat(up, pk_u, fsu, pre_s, post_s)
    return mb, fsu, nb


def delineate_beat(mb: np.ndarray, fs: float, r_idx: int, rr_s: float) -> dict[str, Any]:
    """Delineate a ``(12, T)`` median beat (mV, sampled at ``fs`` Hz, best 500 Hz: :func:`median_beat`) whose R peak
    is at sample ``r_idx``; ``rr_s`` is the record's RR interval (s), which bounds the T and P searches.

    Returns a dict with ``reasons`` (list of what could not be found) and, where found, ``qrs_on`` / ``qrs_off``
    (spatial velocity of all 12 leads), ``base`` (12,) the isoelectric level (mean of the 10 ms ending at QRS
    onset), ``st`` (12,) the level at J + 60 ms against it, ``t_amp`` (12,), ``t_end`` (tangent method, median of the
    three leads with the largest T waves) and ``p_on`` (tangent method). Times are sample indices (float) of ``mb``.
    Never raises on a readable array.
    """
    out: dict[str, Any] = {"reasons": []}
    ms = fs / 1000.0
    # spatial velocity: all leads together make the QRS boundaries robust to any single isoelectric lead
    sv = _smooth(np.sqrt(np.sum(np.gradient(mb, axis=-1) ** 2, axis=0)), max(1, int(round(8 * ms))))
    w = int(round(60 * ms))
    lo, hi = max(0, r_idx - w), min(mb.shape[-1], r_idx + w)
    pk = lo + int(np.argmax(sv[lo:hi]))
    floor = np.percentile(sv, 10)
    thr = floor + 0.08 * (sv[pk] - floor)
    run = int(round(10 * ms))  # must stay below the threshold this long
    on = off = None
    for i in range(pk, max(run, pk - int(round(150 * ms))), -1):
        if np.all(sv[i - run : i] < thr):
            on = i - run // 2
            break
    for i in range(pk, min(len(sv) - run, pk + int(round(180 * ms)))):
        if np.all(sv[i : i + run] < thr):
            off = i + run // 2
            break
    if on is None or off is None:
        out["reasons"].append("qrs boundaries not found")
        return out
    out["qrs_on"], out["qrs_off"] = float(on), float(off)
    # isoelectric level per lead: the 10 ms ending at QRS onset (low spatial velocity there by construction)
    b0, b1 = max(0, on - int(round(10 * ms))), on + 1
    base = mb[:, b0:b1].mean(axis=1)
    out["base"] = base
    j60 = off + int(round(60 * ms))
    out["st"] = mb[:, j60] - base if j60 < mb.shape[-1] else np.full(12, np.nan)
    # T wave: from J + 40 ms to the earlier of R + 0.7 RR / R + 600 ms / end of beat
    t_lo = off + int(round(40 * ms))
    t_hi = min(mb.shape[-1] - 1, r_idx + int(round(min(0.7 * rr_s, 0.6) * fs)))
    if t_hi - t_lo < int(round(60 * ms)):
        out["reasons"].append("no room for a T wave")
        return out
    dev = mb[:, t_lo:t_hi] - base[:, None]
    tp = t_lo + np.argmax(np.abs(dev), axis=1)  # per-lead T peak
    tamp = mb[np.arange(12), tp] - base
    out["t_amp"] = tamp
    order = np.argsort(-np.abs(tamp))[:3]
    ends = []
    for ld in order:
        if abs(tamp[ld]) < 0.05:
            continue
        e = _tangent_crossing(
            mb[ld], int(tp[ld]), t_lo, min(mb.shape[-1] - 1, t_hi + int(round(100 * ms))), base[ld], fs, after=True
        )
        if e is not None and tp[ld] < e < mb.shape[-1]:
            ends.append(e)
    if ends:
        out["t_end"] = float(np.median(ends))
    else:
        out["reasons"].append("t end not found (T waves < 0.05 mV)")
    # P wave: [QRS on - 300 ms, QRS on - 30 ms], lead with the largest deflection from the PR baseline
    p_lo, p_hi = max(0, on - int(round(min(300, 0.45 * rr_s * 1000) * ms))), on - int(round(20 * ms))
    if p_hi - p_lo > int(round(40 * ms)):
        devp = mb[:, p_lo:p_hi] - base[:, None]
        # the window starts at 0.45 RR before QRS onset, after the previous T wave; ignore its first 10 ms
        skip = int(round(10 * ms))
        amp = np.abs(devp[:, skip:]).max(axis=1)
        ld = int(np.argmax(amp))
        if amp[ld] >= 0.04:
            pp = p_lo + skip + int(np.argmax(np.abs(devp[ld, skip:])))
            s = _tangent_crossing(mb[ld], pp, p_lo, p_hi, base[ld], fs, after=False)
            if s is not None and p_lo - int(round(40 * ms)) <= s < pp:
                out["p_on"] = float(s)
            else:
                out["reasons"].append("p onset not found")
        else:
            out["reasons"].append("no P wave (< 0.04 mV)")
    else:
        out["reasons"].append("no room for a P wave")
    return out


# -- one record ----------------------------------------------------------------------------------------------------
def measure_record(
    sig: np.ndarray,
    fs: float = FS,
    t_leads: Sequence[str] = DEFAULT_T_LEADS,
    detect_leads: Sequence[str] = DEFAULT_DETECT_LEADS,
    highpass_hz: float = 0.5,
    xqrs: bool = True,
) -> dict[str, Any]:
    """Measure one ``(12, L)`` record. Never raises: failures give NaN fields and a ``reason``."""
    row: dict[str, Any] = {c: math.nan for c in _columns(t_leads)}
    row["detect_lead"], reasons = "", []
    try:
        sig = np.asarray(sig, dtype=np.float64)
        if sig.ndim != 2 or sig.shape[0] != 12:
            raise ValueError(f"expected (12, L), got {sig.shape}")
        if not np.all(np.isfinite(sig)):
            row["reason"] = "non-finite samples"
            return row
        if float(np.max(np.std(sig, axis=1))) < FLAT_STD_MV:
            row["reason"] = "flat signal"
            return row
        rp = find_r_peaks(sig, fs, detect_leads, highpass_hz)
        if rp.lead is None:
            row["reason"] = rp.reason
            return row
        name, peaks, corr, hr = rp.lead, rp.peaks, rp.beat_corr, rp.hr
        row["beat_corr"], row["detect_lead"] = corr, name
        if rp.reason:
            row["reason"] = rp.reason
            return row
        rr = np.diff(peaks) / fs
        row["n_beats"] = len(peaks)
        row["rr_ms"], row["rr_std_ms"] = float(np.median(rr) * 1000), float(np.std(rr) * 1000)
        lo, hi = PLAUSIBLE["hr"]
        check = consensus_heart_rate(sig[CANONICAL_LEADS.index(name)], fs, hr_range=(lo, hi))
        if not lo <= hr <= hi:
            reasons.append(f"implausible neurokit HR {hr:.0f}")
        elif check.bpm is None or abs(check.bpm - hr) > 0.05 * max(check.bpm, hr):
            agreed = f"agreed {check.bpm:.0f} bpm" if check.bpm is not None else check.reason
            reasons.append(f"hr_nk {hr:.0f} bpm not confirmed by the other R-peak detectors ({agreed})")
        else:
            row["hr_nk"] = hr
        if xqrs:
            hx, why = hr_xqrs(sig, fs)
            row["hr_xqrs"] = hx
            if why:
                reasons.append(why)
        rr_s = float(np.median(rr))
        mb, fsu, nb = median_beat(sig, peaks, fs, lead=name, highpass_hz=highpass_hz)
        if mb is None:
            reasons.append(f"only {nb} complete beats for the median beat")
            row["reason"] = "; ".join(reasons)
            return row
        d = delineate_beat(mb, fsu, int(round(MEDIAN_PRE_S * fsu)), rr_s)
        reasons += d["reasons"]
        to_ms = 1000.0 / fsu
        if "qrs_on" in d:
            row["qrs_ms"] = (d["qrs_off"] - d["qrs_on"]) * to_ms
            for i, ldn in enumerate(CANONICAL_LEADS):
                row[f"st_{ldn}"] = float(d["st"][i])
        if "t_amp" in d:
            for ldn in t_leads:
                row[f"t_amp_{ldn}"] = float(d["t_amp"][CANONICAL_LEADS.index(ldn)])
        if "t_end" in d:
            row["qt_ms"] = (d["t_end"] - d["qrs_on"]) * to_ms
        if "p_on" in d:
            row["pr_ms"] = (d["qrs_on"] - d["p_on"]) * to_ms
        for key in ("qrs_ms", "pr_ms", "qt_ms"):
            v = row[key]
            lo, hi = PLAUSIBLE[key]
            if np.isfinite(v) and not lo <= v <= hi:
                reasons.append(f"implausible {key} {v:.0f}")
                row[key] = math.nan
        if np.isfinite(row["qt_ms"]):
            row["qtc_bazett_ms"] = row["qt_ms"] / math.sqrt(rr_s)
            row["qtc_fridericia_ms"] = row["qt_ms"] / rr_s ** (1.0 / 3.0)
    except Exception as exc:  # noqa: BLE001 - the contract is NaN + reason, never an exception
        reasons.append(f"error: {type(exc).__name__}: {exc}")
    row["reason"] = "; ".join(reasons)
    return row


def _measure_chunk(args: tuple) -> list[dict[str, Any]]:
    sigs, kw = args
    return [measure_record(s, **kw) for s in sigs]


def measure_features(
    signals: np.ndarray,
    fs: float = FS,
    *,
    t_leads: Sequence[str] = DEFAULT_T_LEADS,
    detect_leads: Sequence[str] = DEFAULT_DETECT_LEADS,
    highpass_hz: float = 0.5,
    xqrs: bool = True,
    workers: int = 0,
    chunk: int = 16,
    progress: bool = False,
):
    """Measure every record of ``signals`` ``(N, 12, L)``; returns a pandas DataFrame (one row per record).

    ``workers > 1`` uses a process pool (records are independent; results keep the input order).
    """
    signals = np.asarray(signals)
    if signals.ndim == 2:
        signals = signals[None]
    kw = dict(fs=fs, t_leads=tuple(t_leads), detect_leads=tuple(detect_leads), highpass_hz=highpass_hz, xqrs=xqrs)
    jobs = [(signals[i : i + chunk], kw) for i in range(0, len(signals), chunk)]
    rows: list[dict[str, Any]] = []
    if workers and workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            for part in ex.map(_measure_chunk, jobs):
                rows += part
    else:
        it = jobs
        if progress:
            it = tqdm(jobs, desc="features", unit="chunk")
        for job in it:
            rows += _measure_chunk(job)
    return pd.DataFrame(rows, columns=_columns(t_leads))


# -- summaries -----------------------------------------------------------------------------------------------------
def _err_summary(measured: np.ndarray, target: np.ndarray, tol: float, tol_name: str) -> dict[str, float]:
    measured = np.asarray(measured, dtype=np.float64).ravel()
    target = np.broadcast_to(np.asarray(target, dtype=np.float64), measured.shape).ravel()
    ok = np.isfinite(measured) & np.isfinite(target)
    e = measured[ok] - target[ok]
    res = {
        "n": int(measured.size),
        "n_valid": int(ok.sum()),
        "frac_valid": float(ok.mean()) if measured.size else math.nan,
    }
    if e.size == 0:
        res.update({"mae": math.nan, "bias": math.nan, "rmse": math.nan, "median_ae": math.nan, tol_name: math.nan})
    else:
        res.update(
            {
                "mae": float(np.mean(np.abs(e))),
                "bias": float(np.mean(e)),
                "rmse": float(np.sqrt(np.mean(e**2))),
                "median_ae": float(np.median(np.abs(e))),
                tol_name: float(np.mean(np.abs(e) <= tol)),
            }
        )
    return res


def hr_error(measured: np.ndarray, requested: np.ndarray, tol_bpm: float = 5.0) -> dict[str, float]:
    """HR error summary over records with a valid measurement: MAE, bias (measured - requested), RMSE, median
    absolute error, fraction within ``tol_bpm``, and the counts (``n``, ``n_valid``, ``frac_valid``).

    Records whose HR could not be measured are excluded from the errors but counted in ``n``: report
    ``frac_valid`` beside the MAE (a generator producing unreadable ECGs must not look good).
    """
    return _err_summary(measured, requested, tol_bpm, "frac_within_5" if tol_bpm == 5.0 else f"frac_within_{tol_bpm:g}")


def interval_error(measured: np.ndarray, reference: np.ndarray, tol_ms: float = 20.0) -> dict[str, float]:
    """Same summary for intervals (ms), e.g. generated QT vs the QT measured on the matching real ECG."""
    return _err_summary(measured, reference, tol_ms, f"frac_within_{tol_ms:g}ms")
