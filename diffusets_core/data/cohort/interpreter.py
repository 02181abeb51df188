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
        if len(pk) >= 3:
            # a broad low hump (a U wave after a flat T) can pass the detector's slope threshold: keep only peaks
            # whose QRS (peak to peak within 40 ms) is at least R_PEAK_MIN_FRAC of the median one
            w = int(0.04 * FS)
            amp = np.array([np.ptp(sig[IDX[lead], max(0, p - w) : p + w + 1]) for p in pk])
            pk = pk[amp >= R_PEAK_MIN_FRAC * np.median(amp)]
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
    m["t_amp"] = {n: float(ext[IDX[n]]) for n in LEADS12}
    # T and U waves, up to 60 ms before the next R (a U wave may reach into the next P wave)
    m.update(_t_u_waves(b, off, min(b.shape[1], r + int(np.mean(nn) * FS) - int(0.06 * FS))))
    m["t_flat_u"] = _flat_t_with_u(m)
    qrs = b[:, on : off + 1]
    m["qrs_p2p"] = {n: float(np.ptp(qrs[IDX[n]])) for n in LEADS12}
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
    # P wave: the largest deflection of lead II in the 330 ms before QRS onset (and after the previous
    # beat's T wave), after removing the trend
    # with a U wave (which the T-end rule may run past, into the P wave) P waves are searched from the U wave's
    # half-height point on: a P wave 300 ms before its QRS may ride on the U wave's downslope
    rep_end = min(t_end, m["u_end"]) if m["t_flat_u"] else t_end
    prev_t_end = r - int(np.mean(nn) * FS) + (rep_end - r) + int(0.02 * FS)
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


def interpret(sig: np.ndarray, sex: str | None = None) -> Interpretation:
    """Measure a (12, N) 500 Hz mV record and write its statements.

    ``sex`` ("M" / "F") selects the Cornell voltage limit of LVH (:data:`CORNELL_LVH_MV`); without it the men's
    (higher) limit is used.

    Raises:
        ValueError: ``sex`` is neither None, "M" nor "F".
    """
    if sex not in (None, "M", "F"):
        raise ValueError(f"sex must be 'M', 'F' or None, got {sex!r}")
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
    # LVH voltage (not with LBBB, whose QRS voltage criteria do not apply: Hancock et al. 2009, part V)
    lvh = not lbbb and (
        m["sokolow_mv"] >= SOKOLOW_LVH_MV or m["cornell_mv"] > CORNELL_LVH_MV["F" if sex == "F" else "M"]
    )
    # lateral repolarization (not with LBBB, whose lateral ST-T change is secondary; RBBB's is only in V1-V3):
    # T inversion, and ST depression at J + 60 ms in leads whose T wave is not inverted (where it is, the depressed
    # ST is the downslope of the inverted T, which the T statement reports); with an inferior injury current,
    # aVL's depression is its reciprocal image and is not counted
    inferior_ste = sum(m["st"][n] >= ST_ELEV_MV["inferior"] for n in ST_GROUPS["inferior"]) >= 2
    lat = [n for n in ST_GROUPS["lateral"] if not (n == "aVL" and inferior_ste) and m["t_amp"][n] > T_INV_MV]
    std_lateral = not lbbb and sum(m["st"][n] <= -ST_DEPR_MV for n in lat) >= 2
    twi_lateral = not lbbb and sum(m["t_amp"][n] <= T_INV_MV for n in ST_GROUPS["lateral"]) >= 2
    # LVH with lateral ST depression or T inversion is LVH with strain: that statement says both (Hancock et al.
    # 2009, part V), so the lateral ST and T statements are not repeated
    strain = lvh and (std_lateral or twi_lateral)
    if lvh:
        out.append(
            "Left ventricular hypertrophy with repolarization abnormality" if strain else "Left ventricular hypertrophy"
        )
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
    if std_lateral and not strain:
        out.append("ST depression in lateral leads")
        abnormal = True
    for group, leads in (("lateral", ("I", "aVL", "V5", "V6")), ("anterior", ("V2", "V3", "V4"))):
        # LBBB's secondary ST-T change is discordant in every lead; RBBB's only in the right precordial leads;
        # with LVH strain the lateral inversion is part of that statement
        if lbbb or (bbb and group == "anterior") or (group == "lateral" and strain):
            continue
        if sum(m["t_amp"][n] <= T_INV_MV for n in leads) >= 2:
            out.append(f"T wave inversion in {group} leads")
            abnormal = True
    if sum(m["t_amp"][n] >= T_PEAKED_MV for n in ("V2", "V3", "V4")) >= 2:
        out.append("Peaked T waves")
        abnormal = True
    t_flat_u = m["t_flat_u"]  # flat T waves followed by U waves (see _flat_t_with_u)
    if t_flat_u:
        out.append("T wave flattening with U waves")
        abnormal = True
    # with U waves the T end is unreliable (the U wave merges with T): no QT statement, as machine reports do
    if not bbb and not t_flat_u and m["qtcf_ms"] > QTCF_LONG_MS:
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
