"""Heart rate from R peaks, agreed on by independent detectors, over 20-300 bpm.

Why not one detector: each well-kept detector has a blind spot that turns a real rate into a
wrong one *without saying so*. neurokit2's default ``ecg_peaks`` enforces a 0.3 s refractory
period (``mindelay``), so above 200 bpm it sees every other beat and halves the rate (230 ->
115 bpm); at very slow rates it can count T waves (20 -> 43 bpm). XQRS (``wfdb.processing``)
and the Engelse-Zeelenberg detector (neurokit2 ``engzeemod2012``) fail elsewhere (XQRS on
1 kHz PTB records, Engzee on some leads of them). So:

1. the lead is resampled to :data:`DETECT_FS` = 250 Hz (``scipy.signal.resample_poly``; the
   rate XQRS was designed for, MIT-BIH being 360 Hz) and cleaned with ``neurokit2.ecg_clean``;
2. neurokit2 (``mindelay`` = :data:`MIN_RR_S` = 0.18 s, i.e. up to 333 bpm) and XQRS detect R
   peaks; ``HR = 60 / mean(RR)`` from each (at least 3 peaks);
3. if they agree within :data:`AGREE_TOL` (5 %) the neurokit2 rate is used; otherwise
   Engzee decides: a rate two of the three detectors agree on is used; if none agree the lead
   gives no rate and the reason names the three values.

Measured on simulated beats at 20-295 bpm (500 and 102.4 Hz) and the 12 leads of the real
PTB Diagnostic record ``s0010_re`` (81.7 bpm), see ``tests/test_data_real_quirks.py``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["DETECT_FS", "MIN_RR_S", "AGREE_TOL", "HeartRate", "consensus_heart_rate", "rpeaks_neurokit"]

DETECT_FS = 250.0
MIN_RR_S = 0.18  # below 60/300 bpm = 0.2 s, so 300 bpm is not cut off by the refractory period
AGREE_TOL = 0.05


@dataclass
class HeartRate:
    """``bpm`` (None when no rate could be agreed), which detectors agreed, and why not."""

    bpm: float | None
    method: str = ""
    reason: str = ""


def rpeaks_neurokit(x: np.ndarray, fs: float, *, clean: bool = True) -> np.ndarray:
    """neurokit2 R peaks (sample indices at ``fs``) with a 0.18 s refractory period instead of 0.3 s."""
    import neurokit2 as nk  # ~1.3 s to import, and only records without an RR interval need it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = nk.ecg_clean(x, sampling_rate=fs) if clean else x
        _, info = nk.ecg_peaks(c, sampling_rate=fs, method="neurokit", mindelay=MIN_RR_S)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def _rate(peaks: np.ndarray, fs: float) -> float:
    peaks = np.asarray(peaks)
    if peaks.size < 3:
        return math.nan
    return float(60.0 / np.mean(np.diff(peaks) / fs))


def _agree(a: float, b: float, tol: float) -> bool:
    return bool(np.isfinite(a) and np.isfinite(b) and abs(a - b) <= tol * max(a, b))


def _to_detect_fs(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.signal import resample_poly  # on first use: `import diffusets_core.data` stays light

    if abs(fs - DETECT_FS) < 1e-9:
        return x
    fr = Fraction(DETECT_FS / fs).limit_denominator(1000)
    return resample_poly(x, fr.numerator, fr.denominator)


def consensus_heart_rate(
    x: np.ndarray, fs: float, *, hr_range: tuple[float, float] = (20.0, 300.0), tol: float = AGREE_TOL
) -> HeartRate:
    """Heart rate of one lead ``x`` (1-D, any unit, sampled at ``fs`` Hz) by detector agreement.

    Returns a :class:`HeartRate`; ``bpm`` is None (with a ``reason``) for a non-finite or flat
    lead, fewer than 3 beats, detectors that disagree, or an agreed rate outside ``hr_range``.
    Never raises for bad signals.
    """
    import neurokit2 as nk  # ~1.3 s to import, and only records without an RR interval need it
    import wfdb.processing  # on first use, like neurokit2

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        return HeartRate(None, reason="non-finite samples")
    if np.ptp(x) == 0:
        return HeartRate(None, reason="flat lead")
    try:
        y = _to_detect_fs(x, fs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = nk.ecg_clean(y, sampling_rate=DETECT_FS)
    except Exception as exc:  # noqa: BLE001 - a detector failure is a measurement failure
        return HeartRate(None, reason=f"cleaning failed ({type(exc).__name__})")

    def run(name: str) -> float:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name == "neurokit":
                    return _rate(rpeaks_neurokit(c, DETECT_FS, clean=False), DETECT_FS)
                if name == "xqrs":
                    xq = wfdb.processing.XQRS(sig=c, fs=DETECT_FS)
                    xq.detect(verbose=False)
                    return _rate(xq.qrs_inds, DETECT_FS)
                _, info = nk.ecg_peaks(c, sampling_rate=DETECT_FS, method="engzeemod2012")
                return _rate(info["ECG_R_Peaks"], DETECT_FS)
        except Exception:  # noqa: BLE001
            return math.nan

    h_nk, h_xq = run("neurokit"), run("xqrs")
    if _agree(h_nk, h_xq, tol):
        bpm, method = h_nk, "neurokit+xqrs"
    else:
        h_en = run("engzee")
        if _agree(h_nk, h_en, tol):
            bpm, method = h_nk, "neurokit+engzee"
        elif _agree(h_xq, h_en, tol):
            bpm, method = h_xq, "xqrs+engzee"
        else:
            vals = ", ".join(
                f"{n} {'-' if not np.isfinite(v) else f'{v:.0f}'}"
                for n, v in (("neurokit2", h_nk), ("XQRS", h_xq), ("Engzee", h_en))
            )
            return HeartRate(None, reason=f"R-peak detectors disagree ({vals} bpm)")
    lo, hi = hr_range
    if not lo <= bpm <= hi:
        return HeartRate(None, method, f"agreed rate {bpm:.0f} bpm outside {lo:g}-{hi:g} bpm")
    return HeartRate(float(bpm), method)
