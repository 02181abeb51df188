"""A rule-based ECG interpreter that writes machine-style reports from measurements of the signal.

It reads only the finished 12-lead signal (500 Hz, mV) — never the label the record was built for — so
a report is true of its signal by construction. Measurements are made on a median beat of the normal
beats (neurokit2 R peaks), with the same spatial-velocity QRS and T-end rules used to calibrate the
templates; intervals therefore carry the error of those rules (quantified in the cohort benchmark), not
of neurokit2's wavelet delineation, which is unreliable on these signals.

Statements follow MIMIC-IV-ECG's machine reports: rhythm first, then conduction, voltage, ST-T, then
Normal / Borderline / Abnormal ECG.

Frontal QRS axis, fascicular block and Q waves (criteria in the finding catalogue, ``findings.py``): the axis is
atan2 of the net QRS areas of aVF and I (the QRS limits searched QRS_REACH_S further than the template's, so a wide
QRS keeps its initial forces); left axis deviation below -30 degrees, right axis deviation above +90 (Surawicz et
al. 2009); LAFB at -45 to -90 degrees with a first QRS deflection negative in aVL and positive in II, III and aVF,
and then no separate axis statement; the first deflection of each lead (from INITIAL_MV, or INITIAL_FRAC of a small
QRS) gives the Q waves of an old infarct (fourth universal definition of MI: >= 30 ms and >= 0.1 mV, here also
>= 1/4 of R, in two of II, III, aVF; >= 20 ms in V2 and V3, or V3 and V4), not read with LBBB or under ST
elevation in the same leads.

Rhythm and AV conduction are also read beat by beat. R detections without a QRS (a P or T wave counted as a
beat) are dropped. Lead II with the median QRS-T subtracted at every normal beat (its ST-T stretched to fit) shows
the P waves, also those hidden in T waves: the P wave before each beat gives its PR, and a P wave left without a
QRS in a pause marks a non-conducted beat (Wenckebach). Continuous atrial activity (flutter waves) is read from
the autocorrelation of II/III/aVF/V1/aVR/V2 outside the QRS complexes; the phasic variation of the sinus intervals (sinus
arrhythmia) from a sinusoid fitted to them; a delta wave (pre-excitation) from the slow initial rise of the
median beat's spatial velocity. The rhythm decision runs flutter, Wenckebach, fibrillation, then the sinus
rhythms (rate, then sinus arrhythmia); criteria and sources are in findings.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..leads import CANONICAL_LEADS as LEADS12
from .morphology import FS, QRS_REACH_S, bandpass_sos, qrs_bounds, spatial_velocity, t_wave_end

IDX = {n: i for i, n in enumerate(LEADS12)}
INDEPENDENT = [IDX[n] for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
ST_GROUPS = {
    "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
}

# Decision thresholds (see the module docstring of conditions.py for the edits they separate)
HR_BRADY, HR_TACHY = 60.0, 100.0
AF_RR_CV = 0.12
PR_LONG_MS = 210.0
QRS_WIDE_MS = 120.0
ST_ELEV_MV = {"anterior": 0.25, "inferior": 0.1, "lateral": 0.1}  # V1-V4: above normal J-point elevation
T_INV_MV = -0.1
T_PEAKED_MV = 1.0
QTCF_LONG_MS = 480.0
LOW_VOLT_MV = 0.5
RSR_V1_MV = 0.25
P_WAVE_MV = 0.05
#: P waves are searched up to this long before QRS onset (0.40 s was tried for long-PR records: no gain)
P_SEARCH_S = 0.33
#: frontal QRS axis limits (degrees, net QRS area in I and aVF): normal adult axis -30 to +90; left axis deviation
#: -30 to -90, right axis deviation +90 to +180; LAFB needs -45 to -90 (Surawicz et al. 2009, part III)
AXIS_LEFT_DEG, AXIS_RIGHT_DEG, AXIS_LAFB_DEG = -30.0, 90.0, -45.0
#: a QRS deflection at onset (LAFB's q in aVL and r in II, III, aVF; the start of a Q wave) counts from INITIAL_MV,
#: or from INITIAL_FRAC of the lead's QRS amplitude when that is smaller (a low-voltage QRS); the median beat's
#: residual noise stays well below both
INITIAL_MV, INITIAL_FRAC = 0.05, 0.15
#: pathological Q waves (fourth universal definition of MI, Thygesen et al. 2018): at least Q_WAVE_MV deep and
#: Q_WAVE_MS long (a QS complex counts by its length), Q_WAVE_V2V3_MS in V2-V3; outside V2-V3 also at least
#: Q_WAVE_R_FRAC of the lead's R (normal septal q waves are shorter than 30 ms and shallower than a quarter of R)
Q_WAVE_MV, Q_WAVE_MS, Q_WAVE_V2V3_MS, Q_WAVE_R_FRAC = 0.1, 30.0, 20.0, 0.25
#: LVH voltage: Sokolow-Lyon S(V1) + max R(V5, V6) >= 3.5 mV (Sokolow & Lyon 1949), or Cornell R(aVL) + S(V3)
#: > 2.8 mV in men, > 2.0 mV in women (Casale et al. 1985; the men's limit when the sex is not given)
SOKOLOW_LVH_MV = 3.5
CORNELL_LVH_MV = {"M": 2.8, "F": 2.0}
#: lateral ST depression at J + 60 ms (positive number, mV), in two of I, aVL, V5, V6 (Wagner et al. 2009, part VI)
ST_DEPR_MV = 0.05
#: T flattening with U waves (Rautaharju et al. 2009, part IV): T below T_FLAT_MV in I, II and V4-V6 and a
#: separate later U wave of at least U_WAVE_MV in two of V2-V4, taller than the T
T_FLAT_MV = 0.1
U_WAVE_MV = 0.1
#: a T wave that follows a depressed ST segment (whose minimum lies within T_LEVEL_MV of its level at J + 80 ms) is
#: upright when it rises to this fraction of the depression's depth
T_UPRIGHT_FRAC = 0.5
T_LEVEL_MV = 0.03
#: a detected R peak whose QRS is smaller than this fraction of the median one is not a beat (see _r_peaks)
R_PEAK_MIN_FRAC = 0.4
#: a hump of the mean of V2-V5 counts as a T or U wave when it stands out by this much (mV) from its valleys
U_PROMINENCE_MV = 0.01
#: a detection where the 12-lead spatial velocity (R +- 50 ms) stays below this fraction of the record's largest
#: is not a QRS complex (a P wave or T wave counted as a beat: slow deflections; a wide ectopic QRS reaches ~0.5)
QRS_MIN_FRAC = 0.2
# Rhythm, AV conduction and ectopy criteria of the premature-atrial, flutter, Wenckebach, sinus-arrhythmia and
# pre-excitation statements (sources in findings.py; the edits they read are in conditions.py's docstring)
#: atrial fibrillation: RR CV above AF_RR_CV and P waves at a constant PR (+-20 ms) before fewer than this share
#: of the normal beats (sinus rhythms: > 0.55; fibrillation's largest pre-QRS deflections fall anywhere)
AF_P_CONSTANT = 0.5
#: a beat this early (fraction of the median RR) is premature (the PVC rule's prematurity)
EARLY_FRAC = 0.8
#: an early beat whose QRS correlates this well with the median beat is supraventricular (the PVC rule's limit)
PAC_QRS_CORR = 0.85
#: ... followed by an interval at least this much longer than its coupling interval (a smooth sinus arrhythmia
#: changes by < 20 % from beat to beat) ...
PAC_PAUSE = 1.25
#: ... and is an atrial premature complex when the sinus intervals around the early beats change little from one
#: to the next (median |successive difference| / mean; sinus jitter ~0.03, sinus arrhythmia <= 0.14, fibrillation
#: ~0.16) and P waves at a constant PR precede the other beats (AF_P_CONSTANT)
PAC_SINUS_VAR = 0.15
#: atrial flutter with fixed conduction: a metronomic ventricular rhythm (RR CV between normal beats; flutter
#: 0.001-0.006, sinus rhythms 0.007 and up) ...
FLUTTER_RR_CV = 0.01
#: ... and continuous atrial activity: the best autocorrelation peak of II/III/aVF/V1/aVR/V2 outside the QRS
#: (3-20 Hz) at a lag of one F-wave cycle, for an atrial rate within FLUTTER_RATE (/min) (flutter: median 0.9;
#: sinus rhythms: median ~0.2, up to ~0.6, kept out by their RR variability)
FLUTTER_PERIODICITY = 0.3
FLUTTER_RATE = (240.0, 340.0)
#: sinus arrhythmia (Mason et al. 2007): P-P (here R-R between two sinus beats) range above this (ms) ...
SA_RANGE_MS = 120.0
#: ... that is phasic: a 0.1-0.5 Hz sinusoid fitted to the intervals has at least this peak-to-peak (ms)
SA_PHASIC_MS = 100.0
#: Wenckebach: after a pause holding a non-conducted P wave, the PR is at least this much shorter (ms)
WENCKEBACH_PR_DROP_MS = 40.0
#: a non-conducted P wave is at least this fraction of the conducted P waves' median size
LONE_P_FRAC = 0.5
#: ... and the P waves are regular: this share of the P-P intervals within 0.8-1.25 of their median
ATRIAL_REGULAR_FRAC = 0.8
#: ventricular pre-excitation (Surawicz et al. 2009): PR (P onset to delta-wave onset) below this (ms) ...
PRE_EXC_PR_MS = 120.0
#: ... QRS (delta onset to QRS end) at least this long (ms) ...
PRE_EXC_QRS_MS = 110.0
#: ... and a slurred initial QRS: from the delta onset, the spatial velocity takes this long (ms) to reach half
#: its QRS maximum (normal QRS 12-36 ms; a bundle branch block's stretched QRS 20-50, rarely up to 70)
DELTA_MS = 55.0
#: ... that is an initial slur, not a uniformly slow QRS: DELTA_MS is at least this fraction of the QRS (a bundle
#: branch block's stretched QRS: 0.13-0.42, median 0.25; pre-excitation 0.41-0.72, median 0.53)
DELTA_FRAC = 0.4
#: ... and no tall terminal R' in V1 (mV): the late right-ventricular activation of a right bundle branch block
#: (its records 0.3-1.1; those with low voltage, whose slow QRS mimics a delta wave, >= 0.68), not an initial
#: delta wave (pre-excitation: 98 % below 0.45, at most ~0.6)
PRE_EXC_V1_TERMINAL_MV = 0.65


@dataclass
class Interpretation:
    statements: list[str]
    measurements: dict = field(default_factory=dict)


def _r_peaks(sig: np.ndarray) -> np.ndarray:
    """R peaks (neurokit2) from the lead whose detections are most regular: a lead whose tall T or P
    waves get counted as extra beats gives a falsely irregular rhythm, so among several leads the most
    regular plausible detection wins. Per lead, detections on a broad low hump (a U wave after a flat T: QRS under
    R_PEAK_MIN_FRAC of the median one) and detections without a QRS (:func:`_drop_without_qrs`) are dropped first.
    A lead whose detections miss the QRS (its spatial velocity at the detected peaks under half the best lead's:
    the T waves of a lead with a small or negative QRS, e.g. II with a left or right axis deviation, are as
    regular as R waves) is not used, and one whose detections sit at varying places on their QRS (spread of the
    distance to the spatial-velocity peak over 12 ms) only when no other lead is usable."""
    import neurokit2 as nk
    from scipy.ndimage import uniform_filter1d

    velocity = uniform_filter1d(np.abs(np.diff(sig[INDEPENDENT], axis=1)).sum(axis=0), int(0.01 * FS))
    w = int(0.03 * FS)
    found = []
    for lead in ("II", "V5", "I", "V6", "aVF", "V2"):
        try:
            # what nk.ecg_peaks calls (same peaks), without its per-call DataFrame
            pk = np.asarray(
                nk.ecg_findpeaks(sig[IDX[lead]], sampling_rate=FS, method="neurokit")["ECG_R_Peaks"], dtype=int
            )
        except Exception:
            continue
        if len(pk) >= 3:
            w4 = int(0.04 * FS)
            amp = np.array([np.ptp(sig[IDX[lead], max(0, p - w4) : p + w4 + 1]) for p in pk])
            pk = pk[amp >= R_PEAK_MIN_FRAC * np.median(amp)]
        pk, spread = _drop_without_qrs(sig, pk)
        if len(pk) < 4:
            continue
        rr = np.diff(pk) / FS
        cv = float(np.std(rr) / np.mean(rr))
        if not 0.25 <= np.median(rr) <= 2.0:
            continue
        on_qrs = float(np.median([velocity[max(0, p - w) : p + w].max() for p in pk]))
        found.append((pk, cv, on_qrs, spread))
    best, best_cv = np.array([], dtype=int), np.inf
    spare, spare_cv = best, best_cv  # the best of the leads with scattered detections, if no other is usable
    top = max((f[2] for f in found), default=0.0)
    for pk, cv, on_qrs, spread in found:
        if on_qrs < 0.5 * top:
            continue
        if spread > 0.012 * FS:
            if cv < spare_cv - 0.02:
                spare, spare_cv = pk, cv
        elif cv < best_cv - 0.02:
            best, best_cv = pk, cv
    return best if len(best) else spare


def _drop_without_qrs(sig: np.ndarray, pk: np.ndarray) -> tuple[np.ndarray, float]:
    """``pk`` without the detections that carry no QRS complex (see QRS_MIN_FRAC), and the spread (samples; root
    mean square about the median, the 20 % farthest left out) of the kept detections' distance to their
    spatial-velocity peak (a lead whose detections jump between its P, Q and R waves scatters widely)."""
    if len(pk) < 2:
        return pk, 0.0
    e = spatial_velocity(sig[INDEPENDENT])
    w = int(0.06 * FS)
    at = np.array([max(0, p - w) + int(np.argmax(e[max(0, p - w) : p + w + 1])) for p in pk])
    keep = e[at] >= QRS_MIN_FRAC * e.max()
    pk, at = pk[keep], at[keep]
    if not len(pk):
        return pk, 0.0
    shift = int(np.median(at - pk))
    # spread without the 20 % most distant detections (premature ventricular beats peak elsewhere)
    dev = np.sort(np.abs(at - pk - shift))
    spread = float(np.sqrt(np.mean(dev[: max(1, int(np.ceil(0.8 * len(dev))))] ** 2)))
    return pk, spread


def _filter(sig: np.ndarray) -> np.ndarray:
    """0.5–40 Hz zero-phase band-pass: the diagnostic-mode filtering of ECG carts (baseline wander and
    high-frequency noise removed before any measurement)."""
    from scipy.signal import sosfiltfilt

    return sosfiltfilt(bandpass_sos(), sig, axis=1)


def _initial_wave(x: np.ndarray, on: int, off: int) -> tuple[float, float]:
    """(duration ms, signed extreme mV) of the first QRS deflection of a baseline-corrected lead: the first lobe
    reaching INITIAL_MV (or INITIAL_FRAC of the QRS peak-to-peak amplitude, if smaller) from 10 ms before QRS
    onset ``on``, from where it leaves zero to where it returns. Negative for a Q wave (a QS complex when it lasts
    the whole QRS), positive for an initial R; (0, 0) when no deflection reaches the threshold."""
    lo = max(0, on - int(0.01 * FS))
    seg = x[lo : off + 1]
    big = np.nonzero(np.abs(seg) >= min(INITIAL_MV, INITIAL_FRAC * float(np.ptp(x[on : off + 1]))))[0]
    if not len(big):
        return 0.0, 0.0
    k = int(big[0])
    sgn = 1.0 if seg[k] > 0 else -1.0
    a = k
    while a > 0 and seg[a - 1] * sgn > 0:
        a -= 1
    b = k
    while b < len(seg) and seg[b] * sgn > 0:
        b += 1
    return (b - a) * 1000 / FS, sgn * float(np.abs(seg[a:b]).max())


#: leads whose mean shows the T-U humps (U waves are tallest in V2-V3), and the leads of the T-flattening criterion
U_LEADS = ("V2", "V3", "V4", "V5")
T_FLAT_LEADS = ("I", "II", "V4", "V5", "V6")


def _t_u_waves(b: np.ndarray, off: int, end: int) -> dict:
    """T and U waves of a baseline-corrected median beat ``b`` (12, L) between J + 80 ms and ``end``: on the mean
    of :data:`U_LEADS`, the U wave is the most prominent hump that has another hump (the T wave, the tallest such,
    from J + 120 ms) at least 120 ms before it.

    Returns ``u_amp`` and ``t_before_u`` (mV per lead at the U and T peaks), ``t_region_max`` / ``t_region_min``
    (mV per lead, extremes from J + 80 ms to 120 ms before the U peak: the T wave) and ``u_end`` (the sample where
    the U wave has fallen to half its height), all ``None`` without such a pair of humps (one hump is a T wave, whatever its timing: a long
    QT is not a U wave)."""
    from scipy.signal import find_peaks

    none = {"u_amp": None, "t_before_u": None, "u_end": None, "t_region_max": None, "t_region_min": None}
    lo = off + int(0.08 * FS)
    if end - lo < int(0.2 * FS):
        return none
    g = b[[IDX[n] for n in U_LEADS], lo:end].mean(axis=0)
    pk, props = find_peaks(g, prominence=U_PROMINENCE_MV, width=int(0.02 * FS))
    best = None
    for i in np.argsort(-props["prominences"]):
        u = int(pk[i])
        earlier = pk[(pk >= int(0.04 * FS)) & (pk <= u - int(0.12 * FS))]
        if len(earlier):
            # the U wave's end for the P-wave search: its half width at half height past its peak, where it has
            # fallen to half (a P wave may ride on the rest of its downslope; a threshold on the mean would run
            # into that P wave)
            best = (int(earlier[np.argmax(g[earlier])]), u, float(props["right_ips"][i]))
            break
    if best is None:
        return none
    t, u, u_end = best
    t_region = b[:, lo : lo + u - int(0.12 * FS)]  # J + 80 ms to 120 ms before the U peak: the whole T wave
    return {
        "u_end": lo + int(round(u_end)),
        "u_amp": {n: float(b[IDX[n], lo + u]) for n in LEADS12},
        "t_before_u": {n: float(b[IDX[n], lo + t]) for n in LEADS12},
        "t_region_max": {n: float(t_region[IDX[n]].max()) for n in LEADS12},
        "t_region_min": {n: float(t_region[IDX[n]].min()) for n in LEADS12},
    }


def _flat_t_with_u(m: dict) -> bool:
    """T flattening with U waves (Rautaharju et al. 2009, part IV) from :func:`_t_u_waves`' measurements and the ST
    levels ``m["st"]``: a U wave >= U_WAVE_MV in two of V2-V4, taller (on the mean of U_LEADS) than the T wave and
    not inverted (below -U_WAVE_MV / 2) in I, II or V4-V6, and
    the T wave within T_FLAT_MV of the ST level (J + 60 ms) over its whole course in I, II and V4-V6. Leads whose ST
    is shifted by an injury current (|ST| >= T_FLAT_MV) carry their T on it and are not judged; at least two leads
    of the criterion must be."""
    u = m["u_amp"]
    if u is None:
        return False
    judged = [n for n in T_FLAT_LEADS if abs(m["st"][n]) < T_FLAT_MV]
    flat = all(max(m["t_region_max"][n] - m["st"][n], m["st"][n] - m["t_region_min"][n]) < T_FLAT_MV for n in judged)
    return bool(
        len(judged) >= 2
        and flat
        and sum(u[n] >= U_WAVE_MV for n in ("V2", "V3", "V4")) >= 2
        and all(u[n] > -U_WAVE_MV / 2 for n in T_FLAT_LEADS)  # inverted there, the late wave is a T wave
        and np.mean([u[n] for n in U_LEADS]) > np.mean([m["t_before_u"][n] - m["st"][n] for n in U_LEADS])
    )


def _ectopic_beats(sig: np.ndarray, peaks: np.ndarray, med_rr: float) -> tuple[list, list]:
    """(ectopic, normal) R peaks of the filtered (12, N) ``sig``, by the PVC rule (EARLY_FRAC, PAC_QRS_CORR;
    Mason et al. 2007): the QRS shape of II, V1 and V5 (R +- 80 ms) against the median one; beats closer than 80 ms
    to either end of the record are in neither list."""
    # beat morphology around R (leads II, V1, V5), to separate ectopic beats from normal ones
    w = int(0.08 * FS)
    keep = [p for p in peaks if p - w >= 0 and p + w < sig.shape[1]]
    wins = np.stack([np.concatenate([sig[IDX[l], p - w : p + w] for l in ("II", "V1", "V5")]) for p in keep])
    ref = np.median(wins, axis=0)
    corr = np.array([np.corrcoef(x, ref)[0, 1] for x in wins])
    pidx = {p: i for i, p in enumerate(peaks)}
    ectopic = []
    for j, p in enumerate(keep):
        i = pidx[p]
        early = i > 0 and (p - peaks[i - 1]) / FS < EARLY_FRAC * med_rr
        # a clearly different QRS is ectopic whatever its timing (a wide beat's detected peak can sit late
        # enough to hide its prematurity); a moderately different one must also come early
        if corr[j] < 0.6 or (early and corr[j] < PAC_QRS_CORR):
            ectopic.append(p)
    normal = [p for p in keep if p not in ectopic]
    return ectopic, normal


def _normal_intervals(peaks: np.ndarray, ectopic: list, rr: np.ndarray) -> np.ndarray:
    """R-R intervals (s) between two normal beats (no ectopic beat at either end); all of ``rr`` when none."""
    # rhythm regularity on intervals between two normal beats only
    nn = [(b - a) / FS for a, b in zip(peaks[:-1], peaks[1:]) if a not in ectopic and b not in ectopic]
    return np.asarray(nn) if nn else rr


def _premature_atrial_candidates(
    peaks: np.ndarray, ectopic: list, normal: list, med_rr: float
) -> tuple[list, list[tuple[float, float]]]:
    """(candidate premature atrial complexes, the (time s, R-R s) series of the intervals between two beats that
    are neither ectopic nor early): the PAC rule's prematurity and pause (EARLY_FRAC, PAC_PAUSE; Mason et al.
    2007), before its organised-rhythm test (:func:`_premature_atrial`)."""
    pidx = {p: i for i, p in enumerate(peaks)}

    # premature atrial complex candidates: with a QRS like the others (the PVC rule took the different ones),
    # early after a normal beat against the median interval or the interval before, followed by a pause
    def before(i: int) -> float:
        ok = i > 1 and peaks[i - 2] not in ectopic and peaks[i - 1] not in ectopic
        return (peaks[i - 1] - peaks[i - 2]) / FS if ok else med_rr

    early_sv = [
        p
        for p in normal
        if pidx[p] > 0
        and peaks[pidx[p] - 1] not in ectopic
        and (p - peaks[pidx[p] - 1]) / FS < EARLY_FRAC * max(med_rr, before(pidx[p]))
    ]
    pac = [
        p
        for p in early_sv
        if pidx[p] + 1 < len(peaks) and peaks[pidx[p] + 1] - p >= PAC_PAUSE * (p - peaks[pidx[p] - 1])
    ]
    skip = set(ectopic) | set(early_sv)
    pairs = list(zip(peaks[:-1], peaks[1:]))
    sinus = [(a / FS, (b - a) / FS) for a, b in pairs if a not in skip and b not in skip]
    return pac, sinus


def _sinus_rr_var(sinus: list[tuple[float, float]]) -> float:
    """Median |successive change| of the consecutive sinus R-R intervals over their mean (PAC_SINUS_VAR's
    measure); 0 without two consecutive intervals."""
    # regularity of the sinus beats left: successive interval changes (a phasic sinus arrhythmia changes slowly)
    steps = [abs(y[1] - x[1]) for x, y in zip(sinus[:-1], sinus[1:]) if abs(y[0] - x[0] - x[1]) < 1e-6]
    return float(np.median(steps) / np.mean([x for _, x in sinus])) if steps else 0.0


class _MedianBeat(NamedTuple):
    """The median beat of the normal beats and its fiducial samples (see :func:`_median_beat`)."""

    raw: np.ndarray  #: (12, L) median beat, mV
    b: np.ndarray  #: the same, baseline-corrected: the mean of QRS onset - 20 ms to - 4 ms is 0
    r: int  #: R peak
    on: int  #: QRS onset
    off: int  #: QRS end
    t_end: int  #: T end


def _median_beat(sig: np.ndarray, normal: list, med_rr: float, nn: np.ndarray) -> _MedianBeat | None:
    """The median beat of the normal beats of the filtered (12, N) ``sig``, from R - 450 ms (R - 300 ms when fewer
    than two beats fit) to R + min(700 ms, 0.95 median RR), with its QRS limits (:func:`.morphology.qrs_bounds`,
    searched QRS_REACH_S further) and T end (:func:`.morphology.t_wave_end` at the mean normal R-R ``nn``); None
    when no normal beat fits in the record."""
    pre, post = int(0.45 * FS), int(min(0.7, 0.95 * med_rr) * FS)
    beats = [sig[:, p - pre : p + post] for p in normal if p - pre >= 0 and p + post <= sig.shape[1]]
    if len(beats) < 2:
        pre = int(0.3 * FS)
        beats = [sig[:, p - pre : p + post] for p in normal if p - pre >= 0 and p + post <= sig.shape[1]]
    if not beats:
        return None
    beat = np.median(np.stack(beats), axis=0)
    r = pre
    # the search runs QRS_REACH_S further than the template's: a wide QRS whose detected R peak lies late (a
    # bundle branch block's R') would otherwise be cut at R - 90 ms
    on, off = qrs_bounds(beat[INDEPENDENT], r, reach_s=QRS_REACH_S)
    base = beat[:, max(0, on - int(0.02 * FS)) : max(1, on - int(0.004 * FS))].mean(axis=1)
    b = beat - base[:, None]
    t_end = t_wave_end(b[INDEPENDENT], off, r, float(np.mean(nn)))
    return _MedianBeat(beat, b, r, on, off, t_end)


def _qt(on: int, t_end: int, nn: np.ndarray) -> dict:
    """``qt_ms`` (QRS onset to T end) and its heart-rate corrections ``qtcb_ms`` (Bazett) and ``qtcf_ms``
    (Fridericia 1920) from the normal R-R intervals ``nn`` (s)."""
    qt = (t_end - on) * 1000 / FS
    return {"qt_ms": qt, "qtcb_ms": qt / np.sqrt(np.mean(nn)), "qtcf_ms": qt / np.cbrt(np.mean(nn))}


def _st_and_t(b: np.ndarray, off: int, t_end: int) -> tuple[dict, np.ndarray]:
    """({``st``: mV per lead at J + 60 ms, ``t_amp``: mV per lead, the T wave's signed extreme}, the T segment
    (12, L) from J + 80 ms to T end) of a baseline-corrected median beat ``b`` (12, L); ST at J + 60 ms as in
    Wagner et al. 2009, part VI."""
    j60 = min(off + int(0.06 * FS), b.shape[1] - 1)
    st = {n: float(b[IDX[n], j60]) for n in LEADS12}
    t_lo = min(off + int(0.08 * FS), b.shape[1] - 2)
    t_seg = b[:, t_lo : max(t_end, t_lo + 1)]
    t_max, t_min = t_seg.max(axis=1), t_seg.min(axis=1)
    # the larger extreme is the T wave, except that a depressed ST segment rising into an upright T has an upright
    # T: its minimum is level with the segment's start (the depressed ST, not a trough of an inverted T), and the
    # maximum follows it and reaches T_UPRIGHT_FRAC of its depth
    upright = (
        (t_seg[:, 0] - t_min < T_LEVEL_MV)
        & (t_seg.argmax(axis=1) > t_seg.argmin(axis=1))
        & (t_max >= T_UPRIGHT_FRAC * np.abs(t_min))
    )
    ext = np.where((np.abs(t_max) >= np.abs(t_min)) | upright, t_max, t_min)
    return {"st": st, "t_amp": {n: float(ext[IDX[n]]) for n in LEADS12}}, t_seg


def _qrs_amplitudes(b: np.ndarray, on: int, off: int) -> dict:
    """QRS measures of a baseline-corrected median beat ``b`` (12, L): ``qrs_p2p`` and ``initial`` (first
    deflection, :func:`_initial_wave`) per lead, R and S amplitudes from the QRS-onset level (``r_amp``,
    ``s_amp``, mV per lead) with the LVH voltages ``sokolow_mv`` (Sokolow & Lyon 1949) and ``cornell_mv`` (Casale
    et al. 1985), and ``v1_terminal`` (mV, the largest value of V1's last 40 % of the QRS)."""
    qrs = b[:, on : off + 1]
    m = {"qrs_p2p": {n: float(np.ptp(qrs[IDX[n]])) for n in LEADS12}}
    # first QRS deflection (Q waves; LAFB's q in aVL and r in II, III, aVF): (duration ms, signed extreme mV)
    m["initial"] = {n: _initial_wave(b[IDX[n]], on, off) for n in LEADS12}
    # R and S amplitudes from the QRS-onset level: the voltage criteria of LVH
    q0 = qrs - qrs[:, :1]
    m["r_amp"] = {n: float(max(0.0, q0[IDX[n]].max())) for n in LEADS12}
    m["s_amp"] = {n: float(max(0.0, -q0[IDX[n]].min())) for n in LEADS12}
    m["sokolow_mv"] = m["s_amp"]["V1"] + max(m["r_amp"]["V5"], m["r_amp"]["V6"])
    m["cornell_mv"] = m["r_amp"]["aVL"] + m["s_amp"]["V3"]
    # V1 terminal force: the last 40 % of the QRS
    tail = qrs[IDX["V1"], int(0.6 * qrs.shape[1]) :]
    m["v1_terminal"] = float(tail.max())  # a late positive wave (R') in V1 marks right bundle branch block
    return m


def _p_wave(b: np.ndarray, on: int, prev_t_end: int) -> tuple[dict, tuple[int, int, int] | None]:
    """({``p_amp`` (mV, signed), ``pr_ms`` (P onset to QRS onset ``on``)}, (P onset, end, peak samples)) of lead
    II of a baseline-corrected median beat ``b`` (12, L): the largest deflection from the trend in the P_SEARCH_S
    before QRS onset, after ``prev_t_end`` and up to 10 ms before ``on``; its onset and end where it falls to a
    quarter of its size. A window of 10 samples or fewer gives ({``p_amp``: 0, ``pr_ms``: NaN}, None)."""
    # P wave: the largest deflection of lead II in the 330 ms before QRS onset (and after the previous
    # beat's T wave), after removing the trend
    lo = max(0, on - int(P_SEARCH_S * FS), prev_t_end)
    seg = b[IDX["II"], lo : on - int(0.01 * FS)]
    if len(seg) <= 10:
        return {"p_amp": 0.0, "pr_ms": float("nan")}, None
    trend = np.linspace(seg[0], seg[-1], len(seg))
    d = seg - trend
    k = int(np.argmax(np.abs(d)))
    amp = float(d[k])
    thr = 0.25 * abs(amp)
    onset = k
    while onset > 0 and abs(d[onset]) > thr:
        onset -= 1
    pr_ms = (len(seg) + int(0.01 * FS) - onset) * 1000 / FS
    end = k
    while end < len(d) - 1 and abs(d[end]) > thr:
        end += 1
    return {"p_amp": amp, "pr_ms": pr_ms}, (lo + onset, lo + end, lo + k)


def _axis(x_i: float, x_avf: float) -> float:
    """Frontal-plane axis (degrees, -180..180) of the values ``x_i`` in lead I and ``x_avf`` in aVF."""
    return float(np.degrees(np.arctan2(x_avf, x_i)))


def _frame_and_axes(mb: _MedianBeat, t_seg: np.ndarray, p: tuple[int, int, int] | None) -> dict:
    """``frame`` (MIMIC-IV-ECG fiducial times, ms from the start of the median beat ``mb``), ``qrs_axis``,
    ``t_axis`` and ``p_axis`` (degrees, :func:`_axis`; the QRS axis of Surawicz et al. 2009) of the QRS, of the T
    segment ``t_seg`` and of the P wave's (onset, end, peak) samples ``p`` (None when no P wave is present: no P
    times or axis)."""
    # MIMIC-IV-ECG style fiducial times: ms from the start of the median-beat frame (R - pre); P times
    # only where a P wave was found. Axes (degrees, -180..180) from leads I and aVF: net QRS area,
    # P deflection at the P peak, and net T area (J + 80 ms to T end).
    to_ms = 1000.0 / FS
    m = {
        "frame": {
            "p_onset": None if p is None else p[0] * to_ms,
            "p_end": None if p is None else p[1] * to_ms,
            "qrs_onset": mb.on * to_ms,
            "qrs_end": mb.off * to_ms,
            "t_end": mb.t_end * to_ms,
        }
    }
    qrs = mb.b[:, mb.on : mb.off + 1]
    m["qrs_axis"] = _axis(qrs[IDX["I"]].sum(), qrs[IDX["aVF"]].sum())
    m["t_axis"] = _axis(t_seg[IDX["I"]].sum(), t_seg[IDX["aVF"]].sum())
    m["p_axis"] = None if p is None else _axis(mb.b[IDX["I"], p[2]], mb.b[IDX["aVF"], p[2]])
    return m


def _atrial_rhythm(
    m: dict, sig: np.ndarray, peaks: np.ndarray, ectopic: list, normal: list, mb: _MedianBeat, prev_t_end: int
) -> None:
    """Adds to ``m`` the rhythm and AV-conduction measures of the filtered (12, N) ``sig``: the delta wave
    (:func:`_delta_wave`, its P wave searched after ``prev_t_end``), flutter periodicity and atrial rate
    (:func:`_atrial_periodicity`), the per-beat P waves (:func:`_atrial_beats`) and the phasic variation of their
    P-P intervals (``pp_range_ms``, ``pp_phasic_ms``); criteria and sources of the rhythm findings in findings.py."""
    r, on, off = mb.r, mb.on, mb.off
    m.update(_delta_wave(mb.b, r, on, off, max(0, prev_t_end)))
    qrs_span = (r - on + int(0.01 * FS), off - r + int(0.01 * FS))
    m["flutter_periodicity"], m["atrial_rate"] = _atrial_periodicity(sig, peaks, set(ectopic), qrs_span)
    # sinus P waves are upright in II (a premature atrial beat's P wave is another, but a non-conducted P wave
    # makes the next beat look premature too: all normal beats are analysed)
    frame = (r, on, off, mb.t_end)
    m.update(_atrial_beats(sig[IDX["II"]], peaks, normal, normal, set(ectopic), mb.raw[IDX["II"]], frame))
    m["pp_range_ms"], m["pp_phasic_ms"] = _phasic_variation(m["pp"])


def _premature_atrial(m: dict, pac: list, sinus: list[tuple[float, float]], peaks: np.ndarray, ectopic: list) -> None:
    """Adds to ``m`` ``n_pac`` (the candidates ``pac`` that are atrial premature complexes: in an organised sinus
    rhythm, PAC_SINUS_VAR and AF_P_CONSTANT; Mason et al. 2007), ``sinus_rr_cv`` and the sinus-arrhythmia measures
    ``sa_range_ms`` and ``sa_phasic_ms`` (:func:`_phasic_variation`); with premature atrial complexes, ``rr_ms``
    and ``hr`` become the sinus beats' (criteria and sources of the rhythm findings in findings.py)."""
    # the candidates are atrial premature complexes in an organised sinus rhythm: P waves at a constant PR before
    # the other beats, whose intervals change little from one to the next (in fibrillation early beats are the rule)
    # (and no inverted P wave on the median beat: fibrillatory waves can line up before some beats by chance)
    organised = m["sinus_rr_var"] <= PAC_SINUS_VAR and m["p_constant_frac"] >= AF_P_CONSTANT
    m["n_pac"] = len(pac) if pac and organised and len(sinus) >= 2 else 0
    m["sinus_rr_cv"] = None
    if m["n_pac"]:  # the rate of the sinus beats, and their regularity without the premature beats' intervals
        nn = np.asarray([x for _, x in sinus])
        m["rr_ms"], m["hr"] = float(np.mean(nn) * 1000), 60.0 / float(np.mean(nn))
        m["sinus_rr_cv"] = float(np.std(nn) / np.mean(nn))
    else:
        pairs = list(zip(peaks[:-1], peaks[1:]))
        sinus = [(a / FS, (b - a) / FS) for a, b in pairs if a not in ectopic and b not in ectopic]
    m["sa_range_ms"], m["sa_phasic_ms"] = _phasic_variation(sinus)


def measure(sig: np.ndarray) -> dict:
    """Measurements of a (12, N) 500 Hz mV signal, band-passed first (:func:`_filter`).

    Steps: R peaks (:func:`_r_peaks`); ectopic beats (:func:`_ectopic_beats`), rate and regularity of the normal
    beats, candidate premature atrial complexes (:func:`_premature_atrial_candidates`); the median beat and its QRS
    and T limits (:func:`_median_beat`); QT (:func:`_qt`), ST and T (:func:`_st_and_t`), T and U waves
    (:func:`_t_u_waves`, :func:`_flat_t_with_u`), QRS amplitudes and voltage criteria (:func:`_qrs_amplitudes`), the
    P wave (:func:`_p_wave`), fiducial frame and axes (:func:`_frame_and_axes`), atrial analysis
    (:func:`_atrial_rhythm`, :func:`_premature_atrial`). Returns a dict in that order (keys in the order written);
    on a record without 3 beats or without a complete normal beat it holds ``error`` (after the measures made
    until then) instead of raising.
    """
    m: dict = {}
    sig = _filter(np.asarray(sig, dtype=np.float64))
    peaks = _r_peaks(sig)
    if len(peaks) < 3:
        m["error"] = "fewer than 3 beats detected"
        return m
    rr = np.diff(peaks) / FS
    med_rr = float(np.median(rr))
    ectopic, normal = _ectopic_beats(sig, peaks, med_rr)
    m["n_beats"] = int(len(peaks))
    m["n_pvc"] = len(ectopic)
    nn = _normal_intervals(peaks, ectopic, rr)
    pac, sinus = _premature_atrial_candidates(peaks, ectopic, normal, med_rr)
    m["sinus_rr_var"] = _sinus_rr_var(sinus)
    m["rr_ms"] = float(np.mean(nn) * 1000)
    m["hr"] = 60.0 / float(np.mean(nn))
    m["rr_cv"] = float(np.std(nn) / np.mean(nn))
    mb = _median_beat(sig, normal, med_rr, nn)
    if mb is None:
        m["error"] = "no complete normal beat"
        return m
    b, r = mb.b, mb.r
    m["qrs_ms"] = (mb.off - mb.on) * 1000 / FS
    m.update(_qt(mb.on, mb.t_end, nn))
    st_t, t_seg = _st_and_t(b, mb.off, mb.t_end)
    m.update(st_t)
    # T and U waves, up to 60 ms before the next R (a U wave may reach into the next P wave)
    m.update(_t_u_waves(b, mb.off, min(b.shape[1], r + int(np.mean(nn) * FS) - int(0.06 * FS))))
    m["t_flat_u"] = _flat_t_with_u(m)
    m.update(_qrs_amplitudes(b, mb.on, mb.off))
    # with a U wave (which the T-end rule may run past, into the P wave) P waves are searched from the U wave's
    # half-height point on: a P wave 300 ms before its QRS may ride on the U wave's downslope
    rep_end = min(mb.t_end, m["u_end"]) if m["t_flat_u"] else mb.t_end
    prev_t_end = r - int(np.mean(nn) * FS) + (rep_end - r) + int(0.02 * FS)
    p_wave, p = _p_wave(b, mb.on, prev_t_end)
    m.update(p_wave)
    m["p_present"] = bool(m["p_amp"] > P_WAVE_MV)  # sinus P waves are upright in lead II
    m.update(_frame_and_axes(mb, t_seg, p if m["p_present"] else None))
    _atrial_rhythm(m, sig, peaks, ectopic, normal, mb, prev_t_end)
    _premature_atrial(m, pac, sinus, peaks, ectopic)
    return m


def _phasic_variation(intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """(range, phasic peak-to-peak) in ms of a series of (time s, interval s) between sinus beats.

    The phasic part is the largest peak-to-peak of a sinusoid of 0.1-0.5 Hz (respiration) fitted by least squares
    to the intervals at their times: random beat-to-beat variability gives a small fit, a respiratory sinus
    arrhythmia a large one. Fewer than 5 intervals give (0, 0)."""
    if len(intervals) < 5:
        return 0.0, 0.0
    t = np.array([a for a, _ in intervals])
    x = np.array([v for _, v in intervals]) * 1000
    # at least 2.5 intervals per cycle: faster sinusoids fit beat-to-beat noise
    f = np.arange(0.1, min(0.5, 0.4 / float(np.mean(x) / 1000)) + 1e-9, 0.01)
    ph = 2 * np.pi * f[:, None] * t[None, :]
    a = np.stack([np.ones_like(ph), np.cos(ph), np.sin(ph)], axis=2)  # (freq, interval, 3)
    coef = np.linalg.solve(np.einsum("fij,fik->fjk", a, a) + 1e-9 * np.eye(3), np.einsum("fij,i->fj", a, x)[..., None])
    coef = coef[..., 0]
    best = float(2 * np.hypot(coef[:, 1], coef[:, 2]).max()) if len(f) else 0.0
    return float(np.ptp(x)), min(best, float(np.ptp(x)))


def _lagged_corr(x: np.ndarray, mask: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x[t]`` with ``x[t + lag]`` over the samples where ``mask`` holds at both, for each
    lag (0 where fewer than 150 samples remain); the sums come from FFT cross-correlations."""
    from scipy.fft import irfft, next_fast_len, rfft

    size = next_fast_len(len(x) + int(lags.max()) + 1)
    m = mask.astype(float)
    xm = x * m
    fm, fx, fxx = rfft(m, size), rfft(xm, size), rfft(xm * x, size)

    def xc(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:  # sum_t a[t] b[t + lag] for lag >= 0
        return irfft(np.conj(fa) * fb, size)[lags]

    cnt = np.round(xc(fm, fm))
    sa, sb = xc(fx, fm), xc(fm, fx)
    saa, sbb, sab = xc(fxx, fm), xc(fm, fxx), xc(fx, fx)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / cnt
        var = (saa - sa**2 / cnt) * (sbb - sb**2 / cnt)
        r = cov / np.sqrt(np.maximum(var, 1e-24))
    return np.where(cnt >= 0.3 * FS, np.nan_to_num(r), 0.0)


def _atrial_periodicity(sig: np.ndarray, peaks: np.ndarray, ectopic: set, span: tuple) -> tuple[float, float]:
    """(best autocorrelation, atrial rate /min) of continuous atrial activity: leads II, III, aVF, V1, aVR and V2
    (where flutter waves are largest) band-passed to 3-20 Hz with the QRS complexes (``span`` = samples before and after R, from the median beat's
    QRS onset and end + 10 ms; a premature ventricular beat from R - 100 ms to R + 500 ms) left out,
    autocorrelated at lags of one flutter cycle: the highest local maximum of the autocorrelation at a lag of
    60/340 to 60/240 s (0, 0 when there is none). Flutter waves repeat every cycle; P and T waves do not."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, [3.0, 20.0], btype="bandpass", fs=FS, output="sos")
    n = sig.shape[1]
    mask = np.ones(n, dtype=bool)
    for p in peaks:
        mask[max(0, p - span[0]) : p + span[1]] = False
    for p in ectopic:
        mask[max(0, p - int(0.1 * FS)) : p + int(0.5 * FS)] = False
    mask[: int(0.1 * FS)] = mask[-int(0.1 * FS) :] = False
    lags = np.arange(int(60 / (FLUTTER_RATE[1] + 20) * FS), int(60 / (FLUTTER_RATE[0] - 20) * FS) + 1)
    best, rate = 0.0, 0.0
    for lead in ("II", "III", "aVF", "V1", "aVR", "V2"):
        r = _lagged_corr(sosfiltfilt(sos, sig[IDX[lead]]), mask, lags)
        # a repeating wave gives a peak of the autocorrelation at its cycle (a smooth signal only a falling edge)
        for i in range(1, len(lags) - 1):
            f_rate = 60.0 * FS / lags[i]
            if r[i] >= r[i - 1] and r[i] >= r[i + 1] and FLUTTER_RATE[0] <= f_rate <= FLUTTER_RATE[1] and r[i] > best:
                best, rate = float(r[i]), f_rate
    return best, rate


def _p_in(x: np.ndarray, lo: int, hi: int, sign: float) -> tuple[int, float, int] | None:
    """The P wave whose peak lies in ``x[lo:hi]`` (lead II): the most prominent bump of polarity ``sign`` at the
    scale of a P wave, i.e. the largest ``min(x(t) - x(t - 45 ms), x(t) - x(t + 45 ms))`` (a T wave's slope
    scores below zero, a wide T peak low). Returns (peak sample, score, onset sample: where the bump's rise
    begins, at a quarter of its height) or None for a window under 20 ms."""
    h = int(0.045 * FS)
    lo, hi = max(lo, h), min(hi, len(x) - h)
    if hi - lo < int(0.02 * FS):
        return None
    y = sign * x
    t = np.arange(lo, hi)
    score = np.minimum(y[t] - y[t - h], y[t] - y[t + h])
    k = int(t[int(np.argmax(score))])
    base = float(y[k - h : k].min())
    onset = k
    while onset > k - 2 * h and y[onset] > base + 0.25 * (y[k] - base):
        onset -= 1
    return k, float(score.max()), onset


def _atrial_beats(
    x: np.ndarray, peaks: np.ndarray, qrst: list, sinus: list, ectopic: set, templ: np.ndarray, frame: tuple
) -> dict:
    """Per-beat atrial activity in lead II ``x``: the P wave before each sinus beat (its PR) and P waves left
    without a QRS in the pauses, for 2nd-degree AV block Mobitz I (Wenckebach).

    The median beat ``templ`` (lead II; ``frame`` = its R, QRS onset, QRS end and T end samples) is first
    subtracted from QRS onset to T end + 20 ms at every beat of ``qrst`` (beats with the normal QRS), its ST-T
    stretched x0.85-1.2 to fit each beat (the ST-T follows the preceding cycle), so that P waves hidden in T
    waves stand out (QRST cancellation). For each beat of ``sinus``, the P wave is the most
    prominent upright bump (see :func:`_p_in`) from 20 ms before the previous beat's T end (40 ms after its QRS
    when that leaves under 120 ms; 450 ms after a premature ventricular beat) or 450 ms before QRS onset, to 10
    ms before QRS onset. A *pause* is an interval between two
    sinus beats at least 1.3 times the shortest one; a non-conducted P wave in it is a bump of at least
    LONE_P_FRAC of the conducted P waves' median size 0.7-1.3 P-P cycles (the median P-P of consecutive beats
    outside pauses) after the last conducted P wave, from 40 ms after the QRS to 100 ms before the next P wave. Returns ``pr_beats_ms`` (list), ``p_constant_frac`` (share of the sinus beats whose PR is
    within 20 ms of the median PR), ``n_lone_p`` (``n_lone_p_clean``: those in a pause without an ectopic beat), ``pr_drop_ms`` (median PR shortening across the pauses with a
    non-conducted P wave), ``pp_ms`` (median P-P interval, non-conducted P waves included), ``atrial_regular``
    (ATRIAL_REGULAR_FRAC of the P-P intervals within 0.8-1.25 of that median) and ``pp`` (the (time s, P-P s)
    series)."""
    r0, on0, off0, tend0 = frame
    res = x.copy()
    part = templ[on0 : min(len(templ), tend0 + int(0.02 * FS))]
    part = part - part[0]  # no step where the subtraction starts
    n_qrs, stt = off0 - on0, part[off0 - on0 :]
    # the ST-T follows the heart rate: the template's is stretched to fit each beat best (x0.85-1.2)
    models = [
        np.r_[
            part[:n_qrs], np.interp(np.linspace(0, len(stt) - 1, max(2, round(len(stt) * f))), np.arange(len(stt)), stt)
        ]
        for f in np.linspace(0.85, 1.2, 15)
    ]
    for p in qrst:
        a = int(p) - r0 + on0
        best = None
        for model in models:
            lo, hi = max(0, a), min(len(res), a + len(model))
            if hi <= lo:
                break
            err = float(np.sum((x[lo:hi] - x[lo] + model[0] - model[lo - a : hi - a]) ** 2)) / (hi - lo)
            if best is None or err < best[0]:
                best = (err, model)
        if best is not None:
            model = best[1]
            lo, hi = max(0, a), min(len(res), a + len(model))
            res[lo:hi] -= model[lo - a : hi - a]
    sinus = set(int(p) for p in sinus)
    after_qrs, after_t = off0 - r0 + int(0.04 * FS), tend0 - r0 - int(0.02 * FS)

    def start(prev: int, end: int) -> int:
        """Where to look for a P wave after the beat at ``prev``: after its T wave (where the cancellation
        leaves least of it), or after its QRS when that leaves under 120 ms before ``end``."""
        if prev in ectopic:
            return prev + int(0.45 * FS)
        return prev + (after_t if end - (prev + after_t) >= int(0.12 * FS) else after_qrs)

    beats = []  # (index in peaks, P peak, P size, PR samples)
    for k in range(len(peaks)):
        p = int(peaks[k])
        if p not in sinus:
            continue
        on = p - (r0 - on0)
        hi = on - int(0.01 * FS)
        lo = on - int(0.45 * FS)
        found = _p_in(res, max(start(int(peaks[k - 1]), hi), lo) if k else lo, hi, 1.0)
        if found is not None:
            beats.append((k, found[0], found[1], on - found[2]))
    prs = np.array([b[3] * 1000 / FS for b in beats])
    n_sinus = sum(1 for k in range(len(peaks)) if int(peaks[k]) in sinus)
    out = {"pr_beats_ms": prs.tolist(), "n_lone_p": 0, "n_lone_p_clean": 0, "pr_drop_ms": 0.0}
    # an organised atrial rhythm: P waves before most beats at a constant PR (in fibrillation the largest
    # bump before each QRS falls anywhere)
    out["p_constant_frac"] = float(np.sum(np.abs(prs - np.median(prs)) <= 20.0) / max(1, n_sinus)) if len(prs) else 0.0
    out.update({"pp_ms": float("nan"), "atrial_regular": False, "pp": []})
    if len(beats) < 3:
        return out
    size = float(np.median([b[2] for b in beats]))
    nn = [peaks[k] - peaks[k - 1] for k, *_ in beats if k and int(peaks[k - 1]) in sinus]
    shortest = min(nn) if nn else 0
    pairs = [(b0, b1) for b0, b1 in zip(beats[:-1], beats[1:]) if b1[0] == b0[0] + 1]
    pp0 = [b1[1] - b0[1] for b0, b1 in pairs if peaks[b1[0]] - peaks[b0[0]] < 1.3 * shortest]
    # a premature ventricular beat may sit in a pause: the pause then spans it
    pairs += [
        (b0, b1) for b0, b1 in zip(beats[:-1], beats[1:]) if b1[0] == b0[0] + 2 and int(peaks[b0[0] + 1]) in ectopic
    ]
    p_times, drops = [b[1] for b in beats], []
    for (k0, p0, _, pr0), (k1, p1, _, pr1) in pairs:
        if peaks[k1] - peaks[k0] < 1.3 * shortest or not pp0:
            continue
        # a regular atrial rhythm puts the non-conducted P wave one P-P cycle after the last conducted one
        cyc = float(np.median(pp0))
        lo = max(int(peaks[k0]) + after_qrs, p0 + int(0.7 * cyc))
        hi = min(p1 - int(0.1 * FS), p0 + int(1.3 * cyc))
        if k1 == k0 + 2:
            if peaks[k1] - peaks[k0] >= 2 * cyc - 0.03 * FS:
                continue  # a full compensatory pause: the ectopic beat, not the AV node, blocked that P wave
            hi = min(hi, int(peaks[k0 + 1]) - int(0.12 * FS))  # before the ectopic QRS
        lone = _p_in(res, lo, hi, 1.0)
        if lone is not None and lone[1] >= LONE_P_FRAC * size and lone[1] > 0.5 * P_WAVE_MV:
            out["n_lone_p"] += 1
            out["n_lone_p_clean"] += k1 == k0 + 1
            p_times.append(lone[0])
            drops.append((pr0 - pr1) * 1000 / FS)
    p_times = np.sort(np.asarray(p_times))
    pp = np.diff(p_times) / FS
    # P-P across a missed P wave (a beat without a found P) spans two cycles: keep only single cycles
    med = float(np.median(pp))
    single = pp[pp < 1.5 * med]
    if len(single) >= 2:
        med = float(np.median(single))
        out["pp_ms"] = med * 1000
        ok = (single > 0.8 * med) & (single < 1.25 * med)
        out["atrial_regular"] = bool(np.mean(ok) >= ATRIAL_REGULAR_FRAC)
        out["pp"] = [(float(t) / FS, float(v)) for t, v in zip(p_times[:-1], pp) if v < 1.5 * med]
    if drops:
        out["pr_drop_ms"] = float(np.median(drops))
    return out


def _delta_wave(b: np.ndarray, r: int, on: int, off: int, lo: int) -> dict:
    """Delta wave of ventricular pre-excitation on the baseline-corrected median beat ``b`` (12, L).

    From the QRS onset ``on``, the onset is moved back over a slow initial deflection: while the spatial
    velocity stays above half its value at ``on`` (a PR segment is flat, a delta wave is not). Returns the
    moved onset ``delta_onset`` (sample), ``delta_ms`` (from it until the spatial velocity first reaches half its
    QRS maximum: long for a slurred upstroke), ``qrs_x_ms`` (QRS duration from the moved onset) and ``pr_x_ms``
    (P onset to the moved onset; the P wave is searched in lead II between ``lo`` and the moved onset)."""
    e = spatial_velocity(b[INDEPENDENT])
    peak = float(e[max(0, r - int(0.09 * FS)) : r + int(0.10 * FS)].max())
    start = max(lo, on - int(0.08 * FS))
    x = on
    while x > start and e[x - 1] > 0.5 * e[on]:
        x -= 1
    half = x + int(np.argmax(e[x:] >= 0.5 * peak))
    out = {"delta_onset": x, "delta_ms": (half - x) * 1000 / FS, "qrs_x_ms": (off - x) * 1000 / FS}
    out["delta_shift_ms"] = (on - x) * 1000 / FS
    # the P wave just before the moved onset (a P wave on the previous T wave still stands out as a bump)
    found = _p_in(b[IDX["II"]], x - int(0.14 * FS), x - int(0.02 * FS), 1.0)
    out["pr_x_ms"] = float("nan") if found is None else (x - found[2]) * 1000 / FS
    return out


class _Rhythm(NamedTuple):
    """The rhythm read from the measurements (see :func:`_read_rhythm`)."""

    statement: str  #: the rhythm statement
    atrial: bool  #: atrial fibrillation or flutter
    wenck: bool  #: 2nd-degree A-V block, Mobitz I (Wenckebach)


def _read_rhythm(m: dict) -> _Rhythm:
    """The rhythm of the measurements ``m`` (:func:`measure`): flutter, Wenckebach, fibrillation, then the sinus
    rhythms by rate and sinus arrhythmia (criteria and sources in findings.py: Page et al. 2015, Kusumoto et al.
    2018, January et al. 2014, Mason et al. 2007)."""
    # rhythm: flutter (a metronomic ventricular rhythm with continuous atrial activity at 240-340 /min); Wenckebach
    # (regular P waves, one left without a QRS, PR shorter after the pause) before fibrillation, whose irregular
    # RR it shares; fibrillation (irregular RR without P waves at a constant PR); then the sinus rhythms
    flutter = (
        m["rr_cv"] < FLUTTER_RR_CV
        and m["flutter_periodicity"] >= FLUTTER_PERIODICITY
        and FLUTTER_RATE[0] <= m["atrial_rate"] <= FLUTTER_RATE[1]
    )
    wenck = (
        not flutter
        # a non-conducted P wave in a pause of its own, or two (a pause may also hold an ectopic beat)
        and (m["n_lone_p_clean"] >= 1 or m["n_lone_p"] >= 2)
        and m["pr_drop_ms"] >= WENCKEBACH_PR_DROP_MS
        and m["atrial_regular"]
    )
    no_p = m["p_constant_frac"] < AF_P_CONSTANT or abs(m["p_amp"]) < 1.4 * P_WAVE_MV
    # early beats in an irregular rhythm are fibrillation's, not premature atrial complexes, when the intervals
    # without them stay irregular
    irregular = m["rr_cv"] > AF_RR_CV and (not m["n_pac"] or m["sinus_rr_cv"] > AF_RR_CV)
    af = not flutter and not wenck and irregular and no_p
    atrial = af or flutter
    # the sinus rate is the atrial rate: with non-conducted P waves it is read from the P-P intervals
    rate = 60000.0 / m["pp_ms"] if wenck else m["hr"]
    series = (m["pp_range_ms"], m["pp_phasic_ms"]) if wenck else (m["sa_range_ms"], m["sa_phasic_ms"])
    sa = (
        not atrial
        and HR_BRADY <= rate <= HR_TACHY
        and (m["p_constant_frac"] >= AF_P_CONSTANT or wenck)  # sinus P waves before the beats
        and series[0] > SA_RANGE_MS
        and series[1] >= SA_PHASIC_MS
    )
    if af:
        statement = "Atrial fibrillation"
    elif flutter:
        statement = "Atrial flutter"
    elif rate < HR_BRADY:
        statement = "Sinus bradycardia"
    elif rate > HR_TACHY:
        statement = "Sinus tachycardia"
    elif sa:
        statement = "Sinus arrhythmia"
    else:
        statement = "Sinus rhythm"
    return _Rhythm(statement, atrial, wenck)


def _read_conduction(m: dict, rhythm: _Rhythm) -> tuple[list[str], bool, bool, bool]:
    """(statements, pre-excitation, bundle branch block, left bundle branch block) of the measurements ``m``: AV
    conduction (1st-degree block, Wenckebach, ventricular pre-excitation; Kusumoto et al. 2018, Surawicz et al.
    2009), premature complexes (Mason et al. 2007) and bundle branch block (Surawicz et al. 2009, part III)."""
    atrial, wenck = rhythm.atrial, rhythm.wenck
    out: list[str] = []
    pre_exc = (
        not atrial
        and not wenck
        and m["pr_x_ms"] < PRE_EXC_PR_MS
        and m["qrs_x_ms"] >= PRE_EXC_QRS_MS
        and m["delta_ms"] >= DELTA_MS
        and m["delta_ms"] >= DELTA_FRAC * m["qrs_x_ms"]
        and m["v1_terminal"] < PRE_EXC_V1_TERMINAL_MV
    )
    if not atrial and not wenck and not pre_exc and m["p_present"] and m["pr_ms"] > PR_LONG_MS:
        out.append("1st degree A-V block")
    if wenck:
        out.append("2nd degree A-V block, Mobitz I (Wenckebach)")
    if pre_exc:
        out.append("Ventricular pre-excitation")
    n_pac = 0 if atrial or wenck else m["n_pac"]
    if n_pac:
        out.append("Atrial premature complex" + ("es" if n_pac > 1 else ""))
    if m["n_pvc"]:
        out.append("Ventricular premature complex" + ("es" if m["n_pvc"] > 1 else ""))
    bbb = m["qrs_ms"] >= QRS_WIDE_MS and not pre_exc  # the delta wave, not a blocked bundle, widens the QRS
    lbbb = bbb and m["v1_terminal"] <= RSR_V1_MV
    if bbb:
        out.append("Left bundle branch block" if lbbb else "Right bundle branch block")
    return out, pre_exc, bbb, lbbb


def _read_axis(m: dict, lbbb: bool, pre_exc: bool) -> list[str]:
    """The fascicular block or axis statement of the measurements ``m``: LAFB, else left or right axis deviation
    (Surawicz et al. 2009, part III); none with pre-excitation."""
    # frontal axis; LAFB also needs its initial forces: q in aVL, r in II, III, aVF (read with RBBB as well,
    # bifascicular block; not with LBBB, which blocks both fascicles)
    axis, init = m["qrs_axis"], m["initial"]
    lafb = (
        not lbbb
        and not pre_exc
        and -90.0 <= axis <= AXIS_LAFB_DEG
        and init["aVL"][1] < 0
        and all(init[n][1] > 0 for n in ("II", "III", "aVF"))
    )
    if lafb:
        return ["Left anterior fascicular block"]
    if pre_exc:
        return []  # the delta wave shifts the QRS axis: no axis statement (Surawicz et al. 2009)
    if -90.0 <= axis < AXIS_LEFT_DEG:
        return ["Left axis deviation"]
    if AXIS_RIGHT_DEG < axis <= 180.0:
        return ["Right axis deviation"]
    return []


def _lateral_repolarization(m: dict, lbbb: bool, pre_exc: bool) -> tuple[bool, bool]:
    """(ST depression, T inversion) in two of the lateral leads of the measurements ``m`` (Wagner et al. 2009,
    part VI; Rautaharju et al. 2009, part IV); neither with LBBB or pre-excitation."""
    # lateral repolarization (not with LBBB, whose lateral ST-T change is secondary; RBBB's is only in V1-V3):
    # T inversion, and ST depression at J + 60 ms in leads whose T wave is not inverted (where it is, the depressed
    # ST is the downslope of the inverted T, which the T statement reports); with an inferior injury current,
    # aVL's depression is its reciprocal image and is not counted
    inferior_ste = sum(m["st"][n] >= ST_ELEV_MV["inferior"] for n in ST_GROUPS["inferior"]) >= 2
    lat = [n for n in ST_GROUPS["lateral"] if not (n == "aVL" and inferior_ste) and m["t_amp"][n] > T_INV_MV]
    std_lateral = not lbbb and not pre_exc and sum(m["st"][n] <= -ST_DEPR_MV for n in lat) >= 2
    twi_lateral = not lbbb and not pre_exc and sum(m["t_amp"][n] <= T_INV_MV for n in ST_GROUPS["lateral"]) >= 2
    return std_lateral, twi_lateral


def _read_voltage(
    m: dict, sex: str | None, lbbb: bool, pre_exc: bool, lateral_repolarization: bool
) -> tuple[list[str], bool]:
    """(statements, LVH with strain) of the measurements ``m``: low limb-lead QRS voltage (Mason et al. 2007) and
    LVH voltage (Sokolow & Lyon 1949; Casale et al. 1985), with a repolarization abnormality when
    ``lateral_repolarization`` (Hancock et al. 2009, part V)."""
    out: list[str] = []
    limb = [m["qrs_p2p"][n] for n in ("I", "II", "III", "aVR", "aVL", "aVF")]
    if max(limb) < LOW_VOLT_MV:
        out.append("Low QRS voltages in limb leads")
    # LVH voltage (not with LBBB, whose QRS voltage criteria do not apply: Hancock et al. 2009, part V)
    lvh = (
        not lbbb
        and not pre_exc
        and (m["sokolow_mv"] >= SOKOLOW_LVH_MV or m["cornell_mv"] > CORNELL_LVH_MV["F" if sex == "F" else "M"])
    )
    # LVH with lateral ST depression or T inversion is LVH with strain: that statement says both (Hancock et al.
    # 2009, part V), so the lateral ST and T statements are not repeated
    strain = lvh and lateral_repolarization
    if lvh:
        out.append(
            "Left ventricular hypertrophy with repolarization abnormality" if strain else "Left ventricular hypertrophy"
        )
    return out, strain


def _st_elevation(m: dict, bbb: bool, pre_exc: bool) -> dict[str, bool]:
    """Per group of :data:`ST_GROUPS`: ST at J + 60 ms at least ST_ELEV_MV in two of its leads (Wagner et al.
    2009, part VI; Thygesen et al. 2018); not read in V1-V4 with a bundle branch block, nor with pre-excitation."""
    # ST changes in V1-V3 are expected with a bundle branch block, all ST-T changes with pre-excitation
    return {
        g: not (g == "anterior" and bbb) and not pre_exc and sum(m["st"][n] >= ST_ELEV_MV[g] for n in leads) >= 2
        for g, leads in ST_GROUPS.items()
    }


def _q_wave(m: dict, n: str) -> bool:
    """Whether lead ``n`` of the measurements ``m`` has a pathological Q wave (Thygesen et al. 2018): Q_WAVE_MV
    deep and Q_WAVE_V2V3_MS long in V2-V3, elsewhere Q_WAVE_MS long and Q_WAVE_R_FRAC of the lead's R."""
    ms, mv = m["initial"][n]
    if n in ("V2", "V3"):
        return mv <= -Q_WAVE_MV and ms >= Q_WAVE_V2V3_MS
    return mv <= -Q_WAVE_MV and ms >= Q_WAVE_MS and -mv >= Q_WAVE_R_FRAC * m["r_amp"][n]


def _read_q_waves(m: dict, lbbb: bool, pre_exc: bool, st_up: dict[str, bool]) -> list[str]:
    """The old-infarct statements of the measurements ``m``: Q waves (:func:`_q_wave`) in two of II, III and aVF,
    or in V2-V3 or V3-V4 (Thygesen et al. 2018)."""
    out: list[str] = []
    # Q waves of an old infarct (not with LBBB, which changes septal activation; not under ST elevation in the
    # same leads, which makes them an acute infarct): two contiguous leads
    if not lbbb and not pre_exc and not st_up["inferior"] and sum(_q_wave(m, n) for n in ("II", "III", "aVF")) >= 2:
        out.append("Inferior infarct, age undetermined")
    # V2-V3 or V3-V4 (a QS complex in V1 is normal, so V1 does not count)
    ant = [_q_wave(m, n) for n in ("V2", "V3", "V4")]
    if not lbbb and not pre_exc and not st_up["anterior"] and ((ant[0] and ant[1]) or (ant[1] and ant[2])):
        out.append("Anterior infarct, age undetermined")
    return out


def _read_st(st_up: dict[str, bool], std_lateral: bool) -> list[str]:
    """The ST statements: elevation per group of ``st_up`` (:func:`_st_elevation`), then lateral depression
    ``std_lateral`` (Wagner et al. 2009, part VI)."""
    out = [f"ST elevation, consider {group} injury" for group in ST_GROUPS if st_up[group]]
    if std_lateral:
        out.append("ST depression in lateral leads")
    return out


def _read_t_qt(m: dict, bbb: bool, lbbb: bool, pre_exc: bool, strain: bool) -> list[str]:
    """The T-wave and QT statements of the measurements ``m``: lateral and anterior T inversion, peaked T, T
    flattening with U waves (Rautaharju et al. 2009, part IV) and QT prolongation by Fridericia's QTc (Rautaharju
    et al. 2009, part IV; Fridericia 1920)."""
    out: list[str] = []
    for group, leads in (("lateral", ("I", "aVL", "V5", "V6")), ("anterior", ("V2", "V3", "V4"))):
        # LBBB's secondary ST-T change is discordant in every lead; RBBB's only in the right precordial leads;
        # with LVH strain the lateral inversion is part of that statement
        if lbbb or pre_exc or (bbb and group == "anterior") or (group == "lateral" and strain):
            continue
        if sum(m["t_amp"][n] <= T_INV_MV for n in leads) >= 2:
            out.append(f"T wave inversion in {group} leads")
    wide = bbb or pre_exc  # secondary ST-T change of a wide QRS: no primary QT statement
    if not pre_exc and sum(m["t_amp"][n] >= T_PEAKED_MV for n in ("V2", "V3", "V4")) >= 2:
        out.append("Peaked T waves")
    t_flat_u = m["t_flat_u"]  # flat T waves followed by U waves (see _flat_t_with_u)
    if t_flat_u:
        out.append("T wave flattening with U waves")
    # with U waves the T end is unreliable (the U wave merges with T): no QT statement, as machine reports do
    if not wide and not t_flat_u and m["qtcf_ms"] > QTCF_LONG_MS:
        out.append("Prolonged QT interval")
    return out


def _overall(rhythm: str, abnormal: bool) -> str:
    """The closing statement (Mason et al. 2007): Abnormal ECG with an abnormal finding, else Borderline ECG for
    sinus bradycardia or tachycardia, else Normal ECG."""
    if abnormal:
        return "Abnormal ECG"
    if rhythm in ("Sinus bradycardia", "Sinus tachycardia"):
        return "Borderline ECG"
    return "Normal ECG"


def interpret(sig: np.ndarray, sex: str | None = None) -> Interpretation:
    """Measure a (12, N) 500 Hz mV record (:func:`measure`) and write its statements.

    ``sex`` ("M" / "F") selects the Cornell voltage limit of LVH (:data:`CORNELL_LVH_MV`); without it the men's
    (higher) limit is used. Statements in report order: the rhythm (:func:`_read_rhythm`), AV and intraventricular
    conduction and ectopy (:func:`_read_conduction`), axis (:func:`_read_axis`), voltage (:func:`_read_voltage`),
    Q waves (:func:`_read_q_waves`), ST (:func:`_read_st`), T and QT (:func:`_read_t_qt`), then Normal / Borderline /
    Abnormal ECG (:func:`_overall`). A record :func:`measure` cannot read is "Unreadable ECG", "Abnormal ECG".

    Raises:
        ValueError: ``sex`` is neither None, "M" nor "F".
    """
    if sex not in (None, "M", "F"):
        raise ValueError(f"sex must be 'M', 'F' or None, got {sex!r}")
    m = measure(sig)
    if "error" in m:
        return Interpretation(["Unreadable ECG", "Abnormal ECG"], m)
    rhythm = _read_rhythm(m)
    found, pre_exc, bbb, lbbb = _read_conduction(m, rhythm)
    found += _read_axis(m, lbbb, pre_exc)
    std_lateral, twi_lateral = _lateral_repolarization(m, lbbb, pre_exc)
    voltage, strain = _read_voltage(m, sex, lbbb, pre_exc, std_lateral or twi_lateral)
    found += voltage
    st_up = _st_elevation(m, bbb, pre_exc)
    found += _read_q_waves(m, lbbb, pre_exc, st_up)
    found += _read_st(st_up, std_lateral and not strain)
    found += _read_t_qt(m, bbb, lbbb, pre_exc, strain)
    # atrial fibrillation or flutter, and every statement after the rhythm, make an abnormal ECG
    abnormal = rhythm.atrial or bool(found)
    return Interpretation([rhythm.statement, *found, _overall(rhythm.statement, abnormal)], m)
