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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..leads import CANONICAL_LEADS as LEADS12
from .morphology import FS, QRS_REACH_S, bandpass_sos, qrs_bounds, t_wave_end

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


@dataclass
class Interpretation:
    statements: list[str]
    measurements: dict = field(default_factory=dict)


def _r_peaks(sig: np.ndarray) -> np.ndarray:
    """R peaks (neurokit2) from the lead whose detections are most regular: a lead whose tall T or P
    waves get counted as extra beats gives a falsely irregular rhythm, so among several leads the most
    regular plausible detection wins. A lead whose detections miss the QRS (its spatial velocity at the detected
    peaks under half the best lead's: the T waves of a lead with a small or negative QRS, e.g. II with a left or
    right axis deviation, are as regular as R waves) is not used."""
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
        if len(pk) < 4:
            continue
        rr = np.diff(pk) / FS
        cv = float(np.std(rr) / np.mean(rr))
        if 0.25 <= np.median(rr) <= 2.0:
            on_qrs = float(np.median([velocity[max(0, p - w) : p + w].max() for p in pk]))
            found.append((pk, cv, on_qrs))
    best, best_cv = np.array([], dtype=int), np.inf
    top = max((f[2] for f in found), default=0.0)
    for pk, cv, on_qrs in found:
        if on_qrs >= 0.5 * top and cv < best_cv - 0.02:
            best, best_cv = pk, cv
    return best


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


def measure(sig: np.ndarray) -> dict:
    """Measurements of a (12, N) 500 Hz mV signal."""
    m: dict = {}
    sig = _filter(np.asarray(sig, dtype=np.float64))
    peaks = _r_peaks(sig)
    if len(peaks) < 3:
        m["error"] = "fewer than 3 beats detected"
        return m
    rr = np.diff(peaks) / FS
    med_rr = float(np.median(rr))
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
        early = i > 0 and (p - peaks[i - 1]) / FS < 0.8 * med_rr
        # a clearly different QRS is ectopic whatever its timing (a wide beat's detected peak can sit late
        # enough to hide its prematurity); a moderately different one must also come early
        if corr[j] < 0.6 or (early and corr[j] < 0.85):
            ectopic.append(p)
    m["n_beats"] = int(len(peaks))
    m["n_pvc"] = len(ectopic)
    normal = [p for p in keep if p not in ectopic]
    # rhythm regularity on intervals between two normal beats only
    nn = [(b - a) / FS for a, b in zip(peaks[:-1], peaks[1:]) if a not in ectopic and b not in ectopic]
    nn = np.asarray(nn) if nn else rr
    m["rr_ms"] = float(np.mean(nn) * 1000)
    m["hr"] = 60.0 / float(np.mean(nn))
    m["rr_cv"] = float(np.std(nn) / np.mean(nn))
    pre, post = int(0.45 * FS), int(min(0.7, 0.95 * med_rr) * FS)
    beats = [sig[:, p - pre : p + post] for p in normal if p - pre >= 0 and p + post <= sig.shape[1]]
    if len(beats) < 2:
        pre = int(0.3 * FS)
        beats = [sig[:, p - pre : p + post] for p in normal if p - pre >= 0 and p + post <= sig.shape[1]]
    if not beats:
        m["error"] = "no complete normal beat"
        return m
    beat = np.median(np.stack(beats), axis=0)
    r = pre
    # the search runs QRS_REACH_S further than the template's: a wide QRS whose detected R peak lies late (a
    # bundle branch block's R') would otherwise be cut at R - 90 ms
    on, off = qrs_bounds(beat[INDEPENDENT], r, reach_s=QRS_REACH_S)
    m["qrs_ms"] = (off - on) * 1000 / FS
    base = beat[:, max(0, on - int(0.02 * FS)) : max(1, on - int(0.004 * FS))].mean(axis=1)
    b = beat - base[:, None]
    t_end = t_wave_end(b[INDEPENDENT], off, r, float(np.mean(nn)))
    qt = (t_end - on) * 1000 / FS
    m["qt_ms"] = qt
    m["qtcb_ms"] = qt / np.sqrt(np.mean(nn))
    m["qtcf_ms"] = qt / np.cbrt(np.mean(nn))
    j60 = min(off + int(0.06 * FS), b.shape[1] - 1)
    m["st"] = {n: float(b[IDX[n], j60]) for n in LEADS12}
    t_lo = min(off + int(0.08 * FS), b.shape[1] - 2)
    t_seg = b[:, t_lo : max(t_end, t_lo + 1)]
    ext = np.where(np.abs(t_seg.max(axis=1)) >= np.abs(t_seg.min(axis=1)), t_seg.max(axis=1), t_seg.min(axis=1))
    m["t_amp"] = {n: float(ext[IDX[n]]) for n in LEADS12}
    qrs = b[:, on : off + 1]
    m["qrs_p2p"] = {n: float(np.ptp(qrs[IDX[n]])) for n in LEADS12}
    # first QRS deflection (Q waves; LAFB's q in aVL and r in II, III, aVF): (duration ms, signed extreme mV)
    m["initial"] = {n: _initial_wave(b[IDX[n]], on, off) for n in LEADS12}
    m["r_amp"] = {n: float(max(0.0, qrs[IDX[n]].max())) for n in LEADS12}  # tallest positive QRS deflection
    # V1 terminal force: the last 40 % of the QRS
    tail = qrs[IDX["V1"], int(0.6 * qrs.shape[1]) :]
    m["v1_terminal"] = float(tail.max())  # a late positive wave (R') in V1 marks right bundle branch block
    # P wave: the largest deflection of lead II in the 330 ms before QRS onset (and after the previous
    # beat's T wave), after removing the trend
    prev_t_end = r - int(np.mean(nn) * FS) + (t_end - r) + int(0.02 * FS)
    lo = max(0, on - int(P_SEARCH_S * FS), prev_t_end)
    seg = b[IDX["II"], lo : on - int(0.01 * FS)]
    if len(seg) > 10:
        trend = np.linspace(seg[0], seg[-1], len(seg))
        d = seg - trend
        k = int(np.argmax(np.abs(d)))
        amp = float(d[k])
        m["p_amp"] = amp
        thr = 0.25 * abs(amp)
        onset = k
        while onset > 0 and abs(d[onset]) > thr:
            onset -= 1
        m["pr_ms"] = (len(seg) + int(0.01 * FS) - onset) * 1000 / FS
        end = k
        while end < len(d) - 1 and abs(d[end]) > thr:
            end += 1
        p_on, p_end, p_pk = lo + onset, lo + end, lo + k
    else:
        m["p_amp"], m["pr_ms"] = 0.0, float("nan")
        p_on = p_end = p_pk = None
    m["p_present"] = bool(m["p_amp"] > P_WAVE_MV)  # sinus P waves are upright in lead II
    # MIMIC-IV-ECG style fiducial times: ms from the start of the median-beat frame (R - pre); P times
    # only where a P wave was found. Axes (degrees, -180..180) from leads I and aVF: net QRS area,
    # P deflection at the P peak, and net T area (J + 80 ms to T end).
    to_ms = 1000.0 / FS
    m["frame"] = {
        "p_onset": None if not m["p_present"] else p_on * to_ms,
        "p_end": None if not m["p_present"] else p_end * to_ms,
        "qrs_onset": on * to_ms,
        "qrs_end": off * to_ms,
        "t_end": t_end * to_ms,
    }

    def axis(x_i: float, x_avf: float) -> float:
        return float(np.degrees(np.arctan2(x_avf, x_i)))

    m["qrs_axis"] = axis(qrs[IDX["I"]].sum(), qrs[IDX["aVF"]].sum())
    m["t_axis"] = axis(t_seg[IDX["I"]].sum(), t_seg[IDX["aVF"]].sum())
    m["p_axis"] = axis(b[IDX["I"], p_pk], b[IDX["aVF"], p_pk]) if m["p_present"] else None
    return m


def interpret(sig: np.ndarray) -> Interpretation:
    """Measure a (12, N) 500 Hz mV record and write its statements."""
    m = measure(sig)
    if "error" in m:
        return Interpretation(["Unreadable ECG", "Abnormal ECG"], m)
    out: list[str] = []
    # irregular without an upright P wave in II (a negative deflection there is no sinus P: f waves or the previous T)
    af = m["rr_cv"] > AF_RR_CV and m["p_amp"] < 1.4 * P_WAVE_MV
    if af:
        out.append("Atrial fibrillation")
    elif m["hr"] < HR_BRADY:
        out.append("Sinus bradycardia")
    elif m["hr"] > HR_TACHY:
        out.append("Sinus tachycardia")
    else:
        out.append("Sinus rhythm")
    abnormal = False
    if not af and m["p_present"] and m["pr_ms"] > PR_LONG_MS:
        out.append("1st degree A-V block")
        abnormal = True
    if m["n_pvc"]:
        out.append("Ventricular premature complex" + ("es" if m["n_pvc"] > 1 else ""))
        abnormal = True
    bbb = m["qrs_ms"] >= QRS_WIDE_MS
    lbbb = bbb and m["v1_terminal"] <= RSR_V1_MV
    if bbb:
        out.append("Left bundle branch block" if lbbb else "Right bundle branch block")
        abnormal = True
    # frontal axis; LAFB also needs its initial forces: q in aVL, r in II, III, aVF (read with RBBB as well,
    # bifascicular block; not with LBBB, which blocks both fascicles)
    axis, init = m["qrs_axis"], m["initial"]
    lafb = (
        not lbbb
        and -90.0 <= axis <= AXIS_LAFB_DEG
        and init["aVL"][1] < 0
        and all(init[n][1] > 0 for n in ("II", "III", "aVF"))
    )
    if lafb:
        out.append("Left anterior fascicular block")
        abnormal = True
    elif -90.0 <= axis < AXIS_LEFT_DEG:
        out.append("Left axis deviation")
        abnormal = True
    elif AXIS_RIGHT_DEG < axis <= 180.0:
        out.append("Right axis deviation")
        abnormal = True
    limb = [m["qrs_p2p"][n] for n in ("I", "II", "III", "aVR", "aVL", "aVF")]
    if max(limb) < LOW_VOLT_MV:
        out.append("Low QRS voltages in limb leads")
        abnormal = True
    # ST changes in V1-V3 are expected with a bundle branch block
    st_up = {
        g: not (g == "anterior" and bbb) and sum(m["st"][n] >= ST_ELEV_MV[g] for n in leads) >= 2
        for g, leads in ST_GROUPS.items()
    }

    # Q waves of an old infarct (not with LBBB, which changes septal activation; not under ST elevation in the
    # same leads, which makes them an acute infarct): two contiguous leads
    def q_wave(n: str) -> bool:
        ms, mv = init[n]
        if n in ("V2", "V3"):
            return mv <= -Q_WAVE_MV and ms >= Q_WAVE_V2V3_MS
        return mv <= -Q_WAVE_MV and ms >= Q_WAVE_MS and -mv >= Q_WAVE_R_FRAC * m["r_amp"][n]

    if not lbbb and not st_up["inferior"] and sum(q_wave(n) for n in ("II", "III", "aVF")) >= 2:
        out.append("Inferior infarct, age undetermined")
        abnormal = True
    # V2-V3 or V3-V4 (a QS complex in V1 is normal, so V1 does not count)
    ant = [q_wave(n) for n in ("V2", "V3", "V4")]
    if not lbbb and not st_up["anterior"] and ((ant[0] and ant[1]) or (ant[1] and ant[2])):
        out.append("Anterior infarct, age undetermined")
        abnormal = True
    for group in ST_GROUPS:
        if st_up[group]:
            out.append(f"ST elevation, consider {group} injury")
            abnormal = True
    lbbb = bbb and m["v1_terminal"] <= RSR_V1_MV
    for group, leads in (("lateral", ("I", "aVL", "V5", "V6")), ("anterior", ("V2", "V3", "V4"))):
        # LBBB's secondary ST-T change is discordant in every lead; RBBB's only in the right precordial leads
        if lbbb or (bbb and group == "anterior"):
            continue
        if sum(m["t_amp"][n] <= T_INV_MV for n in leads) >= 2:
            out.append(f"T wave inversion in {group} leads")
            abnormal = True
    if sum(m["t_amp"][n] >= T_PEAKED_MV for n in ("V2", "V3", "V4")) >= 2:
        out.append("Peaked T waves")
        abnormal = True
    if not bbb and m["qtcf_ms"] > QTCF_LONG_MS:
        out.append("Prolonged QT interval")
        abnormal = True
    if af:
        abnormal = True
    if abnormal:
        out.append("Abnormal ECG")
    elif out[0] in ("Sinus bradycardia", "Sinus tachycardia"):
        out.append("Borderline ECG")
    else:
        out.append("Normal ECG")
    return Interpretation(out, m)
