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
    import warnings

    import deepfakeecg
    import torch

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


GAN_BATCH = 16  # the generator always runs on a batch of exactly this size (see gan_records)


def _noise(seed: int):
    import torch

    g = torch.Generator().manual_seed(int(seed))
    return torch.empty(8, N_SAMPLES).uniform_(-1, 1, generator=g)


def gan_records(seeds) -> np.ndarray:
    """deepfake-ecg records for a list of seeds, (k, 8, 5000) in mV.

    The network runs with one thread on batches padded to exactly ``GAN_BATCH`` samples: CPU convolution
    results differ in the last bits between batch sizes (~5e-6 relative between batch 1 and 16), but
    within a fixed batch size a sample's output does not depend on its position or on its batch mates
    (checked bit for bit), so a record is a pure function of its seed whether it is generated alone
    or with others, and whatever the number of worker processes. Batching halves the GAN's cost."""
    import torch

    seeds = [int(s) for s in seeds]
    out = np.empty((len(seeds), 8, N_SAMPLES), dtype=np.float64)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = _generator()
        for b0 in range(0, len(seeds), GAN_BATCH):
            chunk = seeds[b0 : b0 + GAN_BATCH]
            noise = torch.zeros(GAN_BATCH, 8, N_SAMPLES)
            for i, s in enumerate(chunk):
                noise[i] = _noise(s)
            with torch.no_grad():
                y = net(noise)[: len(chunk)].numpy()
            out[b0 : b0 + len(chunk)] = y * 6000.0 / 1000.0  # the package's own µV scaling, then mV
    finally:
        torch.set_num_threads(prev)
    return out


def gan_record(seed: int) -> np.ndarray:
    """One deepfake-ecg record, (8, 5000) in mV, deterministic for ``seed`` (identical to its row in a
    :func:`gan_records` batch)."""
    return gan_records([seed])[0]


@functools.lru_cache(maxsize=1)
def bandpass_sos() -> np.ndarray:
    """0.5-40 Hz 2nd-order Butterworth band-pass (designed once per process)."""
    from scipy.signal import butter

    return butter(2, [0.5, 40.0], btype="bandpass", fs=FS, output="sos")


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


def spatial_velocity(beat: np.ndarray) -> np.ndarray:
    """Smoothed spatial velocity of a multi-lead beat (L,): the sum over leads of |first difference|, averaged over
    10 ms (what the QRS limits and the R-peak checks read)."""
    from scipy.ndimage import uniform_filter1d

    d = np.abs(np.diff(beat, axis=1)).sum(axis=0)
    return uniform_filter1d(np.r_[d, d[-1]], max(1, int(0.01 * FS)), mode="nearest")


#: the interpreter searches the QRS limits of a record's median beat this much further from R than
#: :func:`make_template` does: on a wide QRS whose detected R peak lies late (a bundle branch block's R') the search
#: would stop 90 ms before R and cut off the initial forces. The synthesiser solves the QRS axis over the same
#: limits.
QRS_REACH_S = 0.06


def qrs_bounds(beat: np.ndarray, r: int, frac: float = 0.12, reach_s: float = 0.0) -> tuple[int, int]:
    """QRS onset/offset on a multi-lead beat: where the smoothed spatial velocity falls below ``frac`` of
    its QRS maximum (found from R - 90 ms to R + 100 ms), searching outwards from R; ``reach_s`` lets the search
    run that much further on both sides (a wide QRS whose R peak lies late). When R itself lies outside the QRS
    (a detector's "R" at the edge of a QS complex), the search starts from the steepest point instead."""
    e = spatial_velocity(beat)
    lo, hi = max(0, r - int(0.09 * FS)), min(len(e), r + int(0.10 * FS))
    peak = e[lo:hi].max()
    if e[r] <= frac * peak:
        r = lo + int(np.argmax(e[lo:hi]))
    lo, hi = max(0, lo - int(reach_s * FS)), min(len(e), hi + int(reach_s * FS))
    on = r
    while on > lo and e[on] > frac * peak:
        on -= 1
    off = r
    while off < hi - 1 and e[off] > frac * peak:
        off += 1
    return on, off


#: the T end is searched up to R + this fraction of the RR interval (capped at 700 ms). 0.6 cut off the
#: T wave of prolonged-QT records at 90-100 bpm (QTcF 540 ms at RR 0.64 s ends at ~0.66 RR): 0.72 keeps
#: them while still ending before the next P wave at up to ~150 bpm.
T_END_RR_FRAC = 0.72


def t_wave_end(beat: np.ndarray, qrs_off: int, r: int, rr_s: float, frac: float = 0.15) -> int:
    """T end on a multi-lead beat: after the T peak (largest |deviation| between J + 40 ms and the
    earlier of R + T_END_RR_FRAC RR and the beat's end), the first point below ``frac`` of that peak."""
    lo = qrs_off + int(0.04 * FS)
    hi = min(beat.shape[1], r + int(min(T_END_RR_FRAC * rr_s, 0.7) * FS))
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
    from scipy.signal import sosfiltfilt

    # the interpreter measures on 0.5-40 Hz band-passed signals; the template is made the same way so
    # that its intervals (used to calibrate the edits) are the ones the interpreter will see
    rec = sosfiltfilt(bandpass_sos(), rec, axis=1)
    # ecg_findpeaks is what nk.ecg_peaks calls (same peaks) without building a DataFrame around them
    peaks = np.asarray(nk.ecg_findpeaks(rec[1], sampling_rate=FS, method="neurokit")["ECG_R_Peaks"], dtype=int)
    pre, post = int(PRE_S * FS), int(POST_S * FS)
    rr = np.diff(peaks) / FS
    rr_s = float(np.median(rr)) if len(rr) else 0.85
    good = [p for p in peaks if p - pre >= 0 and p + post <= rec.shape[1]]
    if len(good) < 3:
        raise ValueError("fewer than 3 complete beats")
    beats = np.stack([rec[:, p - pre : p + post] for p in good])
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
