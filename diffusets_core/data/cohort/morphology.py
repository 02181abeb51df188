"""Normal 8-lead morphology from the ``deepfake-ecg`` GAN and a median-beat template per record.

deepfake-ecg (Thambawita et al. 2021, MIT) generates 10 s, 500 Hz ECGs for the eight independent leads
I, II, V1–V6 in µV from uniform noise. Each cohort record takes one GAN record, detects its R peaks and
averages its beats into a template: that template is the record's morphology, which the condition edits
then re-time and reshape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FS = 500
N_SAMPLES = 5000
LEADS8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
PRE_S, POST_S = 0.30, 0.46  # template window around R


@functools.lru_cache(maxsize=1)
def _generator():
    import torch
    import deepfakeecg

    import warnings

    with warnings.catch_warnings():  # the package uses a deprecated init alias; not our concern
        warnings.simplefilter("ignore", FutureWarning)
        net = deepfakeecg.Generator()
    path = Path(deepfakeecg.__file__).parent / "checkpoints" / "g_stat.pt"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # older pickles carry non-tensor metadata; the file ships inside the wheel
        ck = torch.load(path, map_location="cpu", weights_only=False)
    net.load_state_dict(ck["stat_dict"])
    return net.eval()


def gan_record(seed: int) -> np.ndarray:
    """One deepfake-ecg record, (8, 5000) in mV, deterministic for ``seed`` (one record per call, so the
    result does not depend on batching or on the number of worker processes)."""
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.empty(1, 8, N_SAMPLES).uniform_(-1, 1, generator=g)
    with torch.no_grad():
        out = _generator()(noise)[0].numpy()
    return (out * 6000.0 / 1000.0).astype(np.float64)  # the package's own µV scaling, then mV


@dataclass
class Template:
    """A median beat, (8, L) mV, R at index ``r``; ``qrs_on``/``qrs_off`` bound the QRS; ``rr_s`` is the
    source record's mean RR interval."""

    beat: np.ndarray
    r: int
    qrs_on: int
    qrs_off: int
    t_end: int
    rr_s: float


def _energy(beat: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    d = np.abs(np.diff(beat, axis=1)).sum(axis=0)
    return uniform_filter1d(np.r_[d, d[-1]], max(1, int(0.01 * FS)), mode="nearest")


def qrs_bounds(beat: np.ndarray, r: int, frac: float = 0.12) -> tuple[int, int]:
    """QRS onset/offset on a multi-lead beat: where the smoothed spatial velocity falls below ``frac`` of
    its QRS maximum, searching outwards from R."""
    e = _energy(beat)
    lo, hi = max(0, r - int(0.09 * FS)), min(len(e), r + int(0.10 * FS))
    peak = e[lo:hi].max()
    on = r
    while on > lo and e[on] > frac * peak:
        on -= 1
    off = r
    while off < hi - 1 and e[off] > frac * peak:
        off += 1
    return on, off


def t_wave_end(beat: np.ndarray, qrs_off: int, r: int, rr_s: float, frac: float = 0.15) -> int:
    """T end on a multi-lead beat: after the T peak (largest |deviation| between J + 40 ms and the
    earlier of R + 0.6 RR and the beat's end), the first point below ``frac`` of that peak."""
    lo = qrs_off + int(0.04 * FS)
    hi = min(beat.shape[1], r + int(min(0.6 * rr_s, 0.7) * FS))
    if hi - lo < 10:
        return min(beat.shape[1] - 1, qrs_off + int(0.25 * FS))
    from scipy.ndimage import uniform_filter1d

    # smoothed with edge replication: zero padding would fake a drop at the window's end
    m = uniform_filter1d(np.abs(beat[:, lo:hi]).max(axis=0), max(1, int(0.01 * FS)), mode="nearest")
    pk = int(np.argmax(m))
    floor = float(m[pk:].min())  # residual baseline offsets after the T wave
    below = np.nonzero(m[pk:] < floor + frac * (m[pk] - floor))[0]
    return lo + pk + (int(below[0]) if len(below) else len(m) - 1 - pk)


def make_template(rec: np.ndarray) -> Template:
    """Median beat of a GAN record (lead II R peaks via neurokit2), baseline-corrected on the TP segment."""
    import neurokit2 as nk

    from scipy.signal import butter, sosfiltfilt

    # the interpreter measures on 0.5-40 Hz band-passed signals; the template is made the same way so
    # that its intervals (used to calibrate the edits) are the ones the interpreter will see
    rec = sosfiltfilt(butter(2, [0.5, 40.0], btype="bandpass", fs=FS, output="sos"), rec, axis=1)
    _, info = nk.ecg_peaks(rec[1], sampling_rate=FS)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
    pre, post = int(PRE_S * FS), int(POST_S * FS)
    rr = np.diff(peaks) / FS
    rr_s = float(np.median(rr)) if len(rr) else 0.85
    good = [p for p in peaks if p - pre >= 0 and p + post <= rec.shape[1]]
    if len(good) < 3:
        raise ValueError("fewer than 3 complete beats")
    beats = np.stack([rec[:, p - pre:p + post] for p in good])
    beat = np.median(beats, axis=0)
    # baseline: the mean of the first 30 ms (TP segment before the P wave at normal GAN rates)
    beat = beat - beat[:, : int(0.03 * FS)].mean(axis=1, keepdims=True)
    r = pre
    on, off = qrs_bounds(beat, r)
    t_end = t_wave_end(beat, off, r, rr_s)
    # fade the tail to zero after T end so re-timed beats join the baseline smoothly
    tail = beat.shape[1] - t_end
    if tail > 4:
        beat[:, t_end:] *= np.linspace(1.0, 0.0, tail)[None, :]
    return Template(beat, r, on, off, min(t_end, beat.shape[1] - 1), rr_s)
