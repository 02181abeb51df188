"""Physiologically motivated edits that turn a normal median beat into a labelled 10 s ECG.

Every edit works on the eight independent leads (I, II, V1–V6); III, aVR, aVL and aVF are derived
afterwards (Einthoven / Goldberger), so every record obeys Einthoven's law. A beat is cut into three
parts at the template's QRS onset and offset — P wave + PR segment, QRS, ST-T — and re-assembled at new
R-peak times:

* rate: R peaks re-spaced for the target heart rate (2–4 % beat-to-beat variability); the ST-T part is
  time-scaled by (RR_new / RR_template)^(1/3), Fridericia's rate dependence of QT;
* atrial fibrillation: irregular RR (coefficient of variation ≈ 0.2), P waves removed, 4–8 Hz
  fibrillatory waves of 0.05–0.1 mV, strongest in II and V1;
* first-degree AV block: an isoelectric gap inserted before the QRS, PR + 100–160 ms;
* right / left bundle branch block: QRS stretched ×1.7–2.0 (≥ 120 ms) with lead-specific terminal
  forces — RBBB: late R′ in V1, broad S in I and V5–V6; LBBB: broad R in I and V5–V6, deep S in V1;
* ST elevation: a J-point-to-T-end plateau of +0.15–0.3 mV in a contiguous lead group (anterior V1–V4,
  inferior II/III/aVF, lateral I/aVL/V5–V6); limb-lead geometry gives the reciprocal depression;
* T-wave inversion: the T wave mirrored in the lateral or anterior leads;
* peaked T waves: T amplified ×2.2–3 and narrowed (tall, tented T of hyperkalaemia);
* prolonged QT: ST-T stretched ×1.35–1.6 beyond the rate correction;
* premature ventricular complexes: one or two early, wide beats without P wave, with discordant
  ST-T and a compensatory pause;
* low voltage: all QRS complexes scaled so limb-lead amplitudes stay below 0.5 mV;
* frontal QRS axis: the limb-lead QRS, as a frontal-plane vector (x = I, y = (2 II − I)/√3), rotated about the
  straight line from its onset to its J point; the angle is solved (1° grid) so that the finished beat's axis,
  measured as the interpreter does (net QRS areas of I and aVF between its QRS limits), is the target: left axis
  deviation −40 to −60° (its first 30 ms turned to +30°: r in II and aVF, no q in aVL, so neither LAFB nor an
  inferior infarct is read), right axis deviation +110 to +150°. A record without an axis finding is turned into
  −15 to +75° only when it lies outside (a few GAN templates lie at −45° or +100°; BBB forces and Q waves move the
  axis too). The largest limb-lead QRS keeps its amplitude through these edits;
* left anterior fascicular block: axis −55 to −78° with the first 26 ms turned inferior and rightward (+105°,
  a third of the QRS vector): q in I and aVL, r in II, III and aVF (Surawicz et al. 2009);
* pathological Q waves of an old infarct: the initial forces faded out under a triangular Q lobe of 45–55 ms,
  0.2–0.35 mV × the record's amplitude (0.22–0.28 mV with low voltage) and at least 45 % of the R that follows —
  inferior: in lead II, with lead I's initial forces removed (the initial vector points up; III and aVF follow),
  after the rotation (a record whose axis must stay normal gets a shallower Q, down to 0.14 mV, or as a last resort
  its Q turned with the QRS, when the Q's pull cannot otherwise be undone); anterior: in V1–V4 (QS in V1–V3).
  The edits that replace initial forces (LAFB, left axis deviation, Q waves) start 10 ms before the template's QRS
  onset, where its initial forces begin.
* left ventricular hypertrophy: the QRS scaled about its onset-to-offset baseline, precordial leads ×lvh_gain
  (planned for a Sokolow-Lyon voltage of 3.8-5.0 mV, i.e. deeper S in V1-V2 and taller R in V5-V6), limb leads
  ×lvh_limb_gain = 1 + (lvh_gain - 1)/2 (taller R in aVL); a gain below 1 on the precordial leads alone is the
  plan's cap on a normal template whose voltage would cross an LVH criterion;
* LVH with strain: in addition, the lateral ST-T replaced by a downsloping ST segment into an asymmetric inverted
  T (slow descent to a nadir of -0.25 to -0.4 mV at 70 % of the T wave, fast return), along a frontal ST-T vector
  pointing right (-165 degrees: I full, II ×0.75, so aVL carries 0.63 of I) and in V4 (×0.4), V5 (×0.9), V6;
* lateral ST depression: a horizontal ST depression of 0.1-0.2 mV from the J point to J + 90 ms, returning to
  the baseline by J + 160 ms (before the T peak, so the T wave stays upright), same lead weights as strain;
* T flattening with U waves: the ST-T (from J + 30 ms to T end, against the PR level) scaled by t_flat in every
  lead, planned so that I, II and V4-V6 stay within 0.05-0.08 mV, and a U wave of 0.12-0.2 mV (V2-V4; V1, V5, V6
  smaller, I and II a fifth), 30 ms wide (sd), peaking 90 ms after the T end and >= 190 ms after the T peak.
* atrial flutter: P waves removed; a sawtooth F wave (slow descent, fast return) at 250-320 /min
  (0.5 % cycle-length variability), 0.2-0.3 mV peak to peak in II (attenuated like the P wave with low
  voltage), negative in II/III/aVF and positive in V1 (counter-clockwise cavotricuspid flutter), with
  fixed 2:1, 3:1 or 4:1 AV conduction: every R peak sits at the same phase of the F-wave cycle and the
  ventricular rhythm is as regular as the circuit; a premature ventricular beat comes 320 ms or more after
  the previous QRS and the next conducted cycle keeps the rhythm (compensatory pause);
* sinus arrhythmia: RR (= PP) modulated by a respiratory sinusoid of 0.2-0.3 Hz, relative depth
  0.06-0.14, set so the RR range is 150-200 ms (on top of the 3 % beat-to-beat variability);
* 2nd-degree AV block, Mobitz I (Wenckebach): sinus P waves at a regular rate (2 % variability, at most
  75 /min), conducted in groups of 3-5 P waves: the PR grows beat by beat (+70-100 ms at the second beat,
  then half and a quarter of that) until one P wave is not conducted (a lone P wave, no QRS), and the next
  group starts again with the shortest PR; each ST-T follows its preceding cycle; premature ventricular
  beats fall in the pauses, 0.3-0.45 s after the blocked P wave;
* premature atrial complexes: one or two early beats (coupling 60-70 % of the sinus cycle) with the
  sinus QRS-T but an ectopic P wave (inverted in II, 50-90 % of the sinus P wave's size, smaller and
  opposite in V1); the sinus node is reset, so the pause that follows is not compensatory (coupling +
  pause 1.63-1.85 sinus cycles);
* ventricular pre-excitation (WPW pattern): the PR segment is removed (the QRS starts at the end of the
  P wave) and a slurred delta wave of 40-60 ms (rising to 35-50 % of the main QRS deflection, in its
  direction) precedes the QRS, which widens by the delta's duration; secondary ST-T change: T reduced
  and inverted in the leads with the largest delta wave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .morphology import FS, N_SAMPLES, QRS_REACH_S, Template, qrs_bounds

I, II, V1, V2, V3, V4, V5, V6 = range(8)
GROUPS = {"anterior": [V1, V2, V3, V4], "inferior": [II], "lateral": [I, V5, V6]}


@dataclass
class Edit:
    """Everything the synthesiser needs for one record."""

    hr: float
    rhythm: str = "sinus"  # sinus | af
    pr_extra_s: float = 0.0
    bbb: str | None = None  # rbbb | lbbb
    qrs_stretch: float = 1.0
    ste_group: str | None = None
    ste_mv: float = 0.0
    twi_group: str | None = None
    twi_gain: float = 1.0  # depth of the inverted T relative to the upright one (1 = mirrored)
    peaked_gain: float = 1.0
    qt_mult: float = 1.0
    n_pvc: int = 0
    low_voltage: float = 1.0
    amplitude: float = 1.0
    # --- rhythm and AV conduction findings (neutral defaults leave a record unchanged)
    flutter_rate: float = 0.0  # atrial flutter: atrial (F-wave) rate /min; used with rhythm == "flutter"
    flutter_conduction: int = 0  # atrial flutter: fixed AV conduction ratio (2 -> 2:1, ...)
    sinus_arrhythmia: float = 0.0  # relative depth of the phasic (respiratory) RR modulation, 0 = none
    wenckebach: int = 0  # 2nd-degree AV block Mobitz I: P waves per group (4 -> 4:3 conduction), 0 = none
    n_pac: int = 0  # premature atrial complexes in the record
    pre_excitation_s: float = 0.0  # ventricular pre-excitation: delta-wave duration (s), 0 = none
    # --- QRS axis, voltage and Q-wave findings
    axis_target_deg: float | None = None  # frontal QRS axis the limb-lead QRS is rotated to, None = unchanged
    axis_range_deg: tuple[float, float] | None = None  # without a target: rotated into this range if outside it
    lafb: bool = False  # left anterior fascicular block pattern (qR in aVL, rS in II/III/aVF)
    lvh_gain: float = 1.0  # precordial QRS voltage gain of left ventricular hypertrophy (< 1: the plan's voltage cap)
    lvh_limb_gain: float = 1.0  # limb-lead (I, II) QRS voltage gain of left ventricular hypertrophy
    lvh_strain: bool = False  # lateral ST depression with asymmetric T inversion (LVH with strain)
    lvh_strain_mv: float = 0.0  # strain: depth of the inverted T's nadir in I and V6 (positive number, mV)
    q_wave_group: str | None = None  # pathological Q waves: "inferior" | "anterior" | "inferior+anterior"
    q_wave_mv: float = 0.0
    q_wave_s: float = 0.0
    # --- ST-T findings
    std_group: str | None = None  # ST depression territory ("lateral")
    std_mv: float = 0.0  # ST depression depth (positive number, mV)
    t_flat: float = 1.0  # T-wave scale of "T flattening with U waves" (1 = unchanged)
    u_wave_mv: float = 0.0  # U-wave amplitude after the T wave
    extra: dict = field(default_factory=dict)


def _resample(x: np.ndarray, factor: float) -> np.ndarray:
    n = max(2, int(round(x.shape[1] * factor)))
    src = np.linspace(0, x.shape[1] - 1, n)
    return np.stack([np.interp(src, np.arange(x.shape[1]), row) for row in x])


def _smoothstep(n: int, rise: int) -> np.ndarray:
    w = np.ones(n)
    rise = max(1, min(rise, n))
    w[:rise] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, rise))
    return w


def _t_component(stt: np.ndarray, t_end: int) -> tuple[np.ndarray, np.ndarray]:
    """Split an ST-T part into a straight line from its J value to 0 at T end, and the T deviation."""
    n = stt.shape[1]
    line = np.zeros_like(stt)
    k = min(max(t_end, 2), n)
    line[:, :k] = stt[:, :1] * np.linspace(1, 0, k)[None, :]
    w = np.zeros(n)
    w[:k] = _smoothstep(k, int(0.04 * FS))
    return line, (stt - line) * w[None, :]


def _edit_stt(stt: np.ndarray, t_end: int, e: Edit) -> np.ndarray:
    stt = stt.copy()
    line, t = _t_component(stt, t_end)
    if e.twi_group:
        leads = GROUPS[e.twi_group]
        stt[leads] -= (1.0 + e.twi_gain) * t[leads]
    if e.peaked_gain != 1.0:
        # tall, narrow T waves, most marked in the precordial leads
        for ld, g in ((V1, 0.3), (V2, 1.0), (V3, 1.0), (V4, 1.0), (V5, 0.3)):
            amp = np.abs(t[ld]).max()
            if amp < 1e-3:
                continue
            shape = t[ld] / amp
            tall = np.sign(shape) * np.abs(shape) ** 2.0  # narrower than the original T
            stt[ld] += (1 + g * (e.peaked_gain - 1)) * amp * tall - t[ld]
    if e.ste_group:
        n = stt.shape[1]
        prof = np.zeros(n)
        k = min(t_end + int(0.06 * FS), n)
        prof[:k] = _smoothstep(k, int(0.02 * FS))
        fade = min(int(0.08 * FS), k)
        prof[k - fade : k] *= np.linspace(1, 0, fade)
        for ld in GROUPS[e.ste_group]:
            stt[ld] += e.ste_mv * prof
        if e.ste_group == "anterior":  # reciprocal depression in the inferior leads
            stt[II] -= 0.4 * e.ste_mv * prof
    return stt


#: lead weights of the lateral ST-T edits (ST depression, LVH strain): a frontal ST-T vector pointing right and a
#: little up (-165 degrees, away from the leftward QRS) projects fully on I and 0.75 on II, so aVL = I - II/2
#: carries 0.63 of I, aVF = II - I/2 a quarter and III = II - I a quarter of the opposite sign (no inferior ST
#: elevation); the lateral precordial leads carry it, V4 partly
LATERAL_WEIGHTS = {I: 1.0, II: 0.75, V4: 0.4, V5: 0.9, V6: 1.0}
#: leads where a lateral ST edit sets the ST level against the PR level (a template's own J+60 ms elevation there
#: is taken off first, so the depression is the one planned); II and V4 also carry other territories' edits
LATERAL_LEVEL_LEADS = (I, V5, V6)


def pr_level(p: np.ndarray) -> np.ndarray:
    """Per-lead PR-segment level (mV) of a beat's P part: the mean of its last 20-4 ms, the reference against which
    the interpreter measures ST and T amplitudes."""
    return p[:, -int(0.02 * FS) : -int(0.004 * FS)].mean(axis=1)


def _lateral_st_t(stt: np.ndarray, stt_in: np.ndarray, t_end: int, e: Edit, pr: np.ndarray) -> np.ndarray:
    """Lateral ST depression (T kept upright) or LVH strain (downsloping ST into an asymmetric inverted T).

    ``stt``: the ST-T after the other ST-T edits; ``stt_in``: before them (strain replaces its T wave, so the ST
    shifts other edits add, e.g. an inferior injury current in II, are kept); ``pr``: the PR level of each lead
    (:func:`pr_level`)."""
    stt = stt.copy()
    n = stt.shape[1]
    tau = np.arange(n) / FS  # s after the J point (template time; the synthesiser rescales it with the rate)
    rise = _smoothstep(n, int(0.02 * FS))  # joins the QRS end without a step
    j60 = min(int(0.06 * FS), n - 1)
    if e.lvh_strain:
        # the T wave of the lateral leads replaced by a downsloping ST segment that runs into an asymmetric inverted
        # T: slow descent to the nadir at 70 % of the T wave, fast return to the baseline at T end
        te = max(t_end, int(0.2 * FS)) / FS
        tn = 0.7 * te
        a = e.lvh_strain_mv
        dj = 0.35 * a  # depression at the J point
        w = np.where(
            tau <= tn,
            dj + (a - dj) * np.clip(tau / tn, 0, 1) ** 1.3,
            a * 0.5 * (1 + np.cos(np.pi * np.clip((tau - tn) / (te - tn), 0, 1))),
        )
        shape = rise * np.clip(w / a, 0, 1)  # 0 at J, 1 over the ST-T, 0 at T end: carries the level offset
        line, t = _t_component(stt_in, t_end)  # the beat's own T wave, which strain replaces
        for ld, g in LATERAL_WEIGHTS.items():
            off = max(0.0, line[ld, j60] - pr[ld]) if ld in LATERAL_LEVEL_LEADS else 0.0
            stt[ld] += g * (-w * rise - t[ld]) - off * shape
    elif e.std_group == "lateral":
        # horizontal ST depression from the J point to J + 90 ms, back to the baseline by J + 160 ms: the ST
        # segment is depressed while the T wave that follows stays upright
        ramp = np.clip((tau - 0.09) / 0.07, 0, 1)
        prof = rise * 0.5 * (1 + np.cos(np.pi * ramp))
        for ld, g in LATERAL_WEIGHTS.items():
            off = max(0.0, stt[ld, j60] - pr[ld]) if ld in LATERAL_LEVEL_LEADS else 0.0
            stt[ld] -= (g * e.std_mv + off) * prof
    elif e.std_group:
        raise ValueError(f"Edit.std_group must be 'lateral' or None, got {e.std_group!r}")
    return stt


#: U-wave amplitude per lead relative to Edit.u_wave_mv: U waves are tallest in V2-V3 (Rautaharju et al. 2009)
U_WEIGHTS = {I: 0.2, II: 0.2, V1: 0.4, V2: 1.0, V3: 1.0, V4: 0.9, V5: 0.7, V6: 0.5}


def _t_flat_u(stt: np.ndarray, stt_in: np.ndarray, t_end: int, e: Edit, pr: np.ndarray) -> np.ndarray:
    """T waves flattened and a U wave after T end.

    The ST-T of the unedited beat (``stt_in``), measured from the PR level ``pr``, is scaled by ``e.t_flat`` from
    J + 30 ms to T end (blended in and out so the beat stays continuous; other edits made on ``stt`` are kept), so
    the T wave keeps its shape at a flat height. The ST-T part is extended with its last value when the U wave
    would run past the template's end."""
    n = stt.shape[1]
    w = _smoothstep(n, int(0.03 * FS))
    k = min(n, t_end + int(0.06 * FS))
    fade = max(1, k - t_end)
    w[t_end:k] *= np.linspace(1, 0, fade)
    w[k:] = 0.0
    stt = stt - (1.0 - e.t_flat) * (stt_in - pr[:, None]) * w[None, :]
    if e.u_wave_mv:
        # the U wave peaks 90 ms after T end and at least 190 ms after the T peak of V2-V5, where it is tallest
        _, t = _t_component(stt_in, t_end)
        t_peak = int(np.argmax(np.abs(t[V2 : V5 + 1].mean(axis=0))))
        centre, sd = max(t_end + int(0.09 * FS), t_peak + int(0.19 * FS)), 0.03 * FS
        need = int(centre + 3 * sd) + 1
        if need > n:
            stt = np.concatenate([stt, np.repeat(stt[:, -1:], need - n, axis=1)], axis=1)
        u = np.exp(-0.5 * ((np.arange(stt.shape[1]) - centre) / sd) ** 2)
        for ld, g in U_WEIGHTS.items():
            stt[ld] += g * e.u_wave_mv * u
    return stt


def _bbb_forces(qrs: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    n = qrs.shape[1]
    x = np.arange(n)

    def bump(center: float, width_s: float, amp: float) -> np.ndarray:
        return amp * np.exp(-0.5 * ((x - center * n) / (width_s * FS)) ** 2)

    q = qrs.copy()
    if kind == "rbbb":
        q[V1] += bump(0.8, 0.02, rng.uniform(0.8, 1.1))
        q[V2] += bump(0.78, 0.018, rng.uniform(0.3, 0.5))
        for ld in (I, V5, V6):
            q[ld] += bump(0.78, 0.02, -rng.uniform(0.25, 0.4))
    else:
        q[V1] += bump(0.55, 0.03, -rng.uniform(0.8, 1.2))
        q[V2] += bump(0.55, 0.03, -rng.uniform(0.6, 1.0))
        for ld in (I, V5, V6):
            q[ld] += bump(0.6, 0.03, rng.uniform(0.5, 0.8))
    return q


#: log-normal sigma of AF's RR intervals (ratio to the mean). 0.24 gives a coefficient of variation ~0.24, so
#: that even a record with 8-10 intervals between normal beats (fast rate, ectopic beats left out) stays
#: clearly above the interpreter's 0.12 irregularity threshold.
AF_RR_SIGMA = 0.24
#: largest limb-lead QRS (peak to peak, mV) of a low-voltage record after every other QRS edit
LOW_VOLTAGE_LIMB_MV = 0.42


def _limit_limb_voltage(qrs: np.ndarray, limit: float) -> np.ndarray:
    """Scale the limb-lead QRS (I and II, hence the derived limb leads) so no limb lead exceeds ``limit`` mV
    peak to peak. Deviations are scaled around the straight line joining the QRS ends, so the joins to the P and
    ST parts stay continuous. Terminal forces added after the low-voltage scaling (bundle branch block) would
    otherwise lift a low-voltage record above the 0.5 mV criterion."""
    p2p = float(np.ptp(derive_12(qrs)[:6], axis=1).max())
    if p2p <= limit:
        return qrs
    q = qrs.copy()
    line = np.linspace(q[:2, 0], q[:2, -1], q.shape[1]).T
    q[:2] = line + (q[:2] - line) * (limit / p2p)
    return q


# --- frontal QRS axis, left anterior fascicular block and pathological Q waves.
# The limb-lead QRS is handled as a frontal-plane vector (Einthoven's triangle): x = I, y = (2 II - I) / sqrt(3),
# so aVF = (sqrt(3) / 2) y; its axis is measured the way the interpreter measures it, atan2(net area of aVF,
# net area of I).
SQRT3 = float(np.sqrt(3.0))
#: LAFB: the initial QRS vector (first ~25 ms) turns inferior and rightward, giving q in I/aVL and r in II/III/aVF
#: before the superior main forces (Surawicz et al. 2009); direction (degrees) and size relative to the largest
#: frontal QRS vector (at least LAFB_INITIAL_MIN_MV)
LAFB_INITIAL_DEG, LAFB_INITIAL_FRAC, LAFB_INITIAL_MIN_MV, LAFB_INITIAL_S = 105.0, 0.35, 0.12, 0.026
#: left axis deviation without fascicular block: the first 30 ms point leftward-inferior (+30 degrees: r in aVL, II and
#: aVF), so neither LAFB's q in aVL nor inferior Q waves are read
LAD_INITIAL_DEG, LAD_INITIAL_FRAC, LAD_INITIAL_MIN_MV, LAD_INITIAL_S = 30.0, 0.3, 0.2, 0.03
#: the QRS of the edits that replace the initial forces (LAFB, left axis deviation, Q waves) starts this long
#: before the template's QRS onset
QRS_LEAD_IN_S = 0.01
#: pathological Q waves: the original initial forces are gone under the first 40 % of the Q lobe and back at 90 % of
#: its length, so the infarct removes the initial forces (the Q wave) but keeps the later R
Q_FADE = (0.4, 0.9)
#: a Q wave is at least this fraction of the R that follows it in the edited lead (pathological Q waves are deeper
#: than a quarter of R; normal septal q waves are shallower)
Q_R_FRAC = 0.45
#: the shallowest Q a record gets when its full Q would pull the axis out of the normal range (see _frontal_qrs)
Q_MIN_MV, Q_R_FRAC_MIN = 0.14, 0.33


def _lead_lobe(n: int, width: int, fade: tuple[float, float] = (0.6, 1.2)) -> tuple[np.ndarray, np.ndarray]:
    """(lobe, keep) over a QRS of n samples: a triangular lobe of height 1 on the first ``width`` samples (apex at
    45 %; a wave whose slope never flattens, so the interpreter's spatial-velocity QRS onset stays at its start), and
    the weight that fades the original initial forces out under it (0 up to ``fade[0]`` x width, back to 1 at
    ``fade[1]`` x width)."""
    t = np.arange(n, dtype=float)
    apex = 0.45 * max(width, 2)
    lobe = np.clip(np.minimum(t / apex, (max(width, 2) - t) / (max(width, 2) - apex)), 0.0, 1.0)
    a, b = fade[0] * width, fade[1] * width
    keep = np.clip((t - a) / max(b - a, 1.0), 0.0, 1.0)
    return lobe, 0.5 - 0.5 * np.cos(np.pi * keep)


def _frontal_edit(
    dev_i: np.ndarray, dev_ii: np.ndarray, theta: np.ndarray, e: Edit, q_first: bool = False, q_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Leads I and II (k, n) of a QRS deviation (n,) rotated by each angle of ``theta`` (k,) (radians), with the
    initial forces of the edit (LAFB or plain left axis deviation) and the inferior Q waves.

    The Q waves come after the rotation (they stay in II, III, aVF whatever the axis), or, with ``q_first``, before
    it, turning with the whole QRS (for a record whose axis must stay normal when the superior pull of the Q waves
    cannot be undone by rotating the rest of the QRS alone); ``q_scale`` makes them shallower (:func:`_q_lead`)."""
    inferior_q = bool(e.q_wave_group) and "inferior" in e.q_wave_group.split("+")
    n = dev_i.shape[0]

    def q_waves(i: np.ndarray, ii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the infarcted inferior wall no longer pulls the initial forces down: they point up, lead I keeps none
        # of its own and lead II (so III and aVF) starts with a Q wave
        _, keep = _lead_lobe(n, int(e.q_wave_s * FS), Q_FADE)
        return i * keep, _q_lead(ii, e, q_scale)

    if inferior_q and q_first:
        dev_i, dev_ii = q_waves(dev_i, dev_ii)
    x, y = dev_i[None, :], (2 * dev_ii[None, :] - dev_i[None, :]) / SQRT3
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xr, yr = c * x - s * y, s * x + c * y
    size = float(np.sqrt(x**2 + y**2).max())
    init = None
    # (the floor in mV is at most half the QRS size, so a low-voltage QRS keeps its own proportions)
    if e.lafb:
        amp = max(LAFB_INITIAL_FRAC * size, min(LAFB_INITIAL_MIN_MV, 0.5 * size))
        init = (LAFB_INITIAL_DEG, amp, LAFB_INITIAL_S)
    elif e.axis_target_deg is not None and e.axis_target_deg < -30:
        init = (LAD_INITIAL_DEG, max(LAD_INITIAL_FRAC * size, min(LAD_INITIAL_MIN_MV, 0.5 * size)), LAD_INITIAL_S)
    if init is not None:
        lobe, keep = _lead_lobe(n, int(init[2] * FS))
        a = np.radians(init[0])
        xr = xr * keep + init[1] * np.cos(a) * lobe
        yr = yr * keep + init[1] * np.sin(a) * lobe
    ii = (xr + SQRT3 * yr) / 2
    if inferior_q and not q_first:
        xr, ii = q_waves(xr, ii)
    return xr, ii


def _q_lead(x: np.ndarray, e: Edit, scale: float = 1.0) -> np.ndarray:
    """Lead(s) ``x`` (..., n) with a pathological Q wave: the initial forces faded out under a negative triangular
    lobe of ``e.q_wave_s``, at least ``e.q_wave_mv`` deep and at least Q_R_FRAC of the R left after it; ``scale``
    < 1 makes it shallower, down to Q_MIN_MV and Q_R_FRAC_MIN of R."""
    lobe, keep = _lead_lobe(x.shape[-1], int(e.q_wave_s * FS), Q_FADE)
    kept = x * keep
    r = kept.max(axis=-1, keepdims=True)
    depth = np.maximum(scale * np.maximum(e.q_wave_mv, Q_R_FRAC * r), np.maximum(Q_MIN_MV, Q_R_FRAC_MIN * r))
    return kept - depth * lobe


def _frontal_qrs(p: np.ndarray, qrs: np.ndarray, stt: np.ndarray, e: Edit, r: int, stt_scale: float) -> np.ndarray:
    """The QRS (8, n) with its limb leads rotated in the frontal plane and given the LAFB / LAD initial forces and
    inferior Q waves of the edit; ``p`` and ``stt`` are the finished P and ST-T parts around it, ``r`` the R peak
    within the QRS (where the records' beats are aligned, as the interpreter's median beat is) and ``stt_scale``
    the time scale of the ST-T part at the record's mean rate (as :func:`synthesize` applies it).

    The rotation angle is solved (1 degree grid) so that the finished beat has the QRS axis ``e.axis_target_deg``
    as the interpreter measures it (net areas of I and aVF between its QRS limits, searched QRS_REACH_S beyond
    the template's, from the level 20-4 ms before the onset), or, without a target, an axis within
    ``e.axis_range_deg`` (nearest bound when outside, no rotation when inside); the QRS limits are re-found on the
    edited beat until they settle. The QRS is rotated about the straight line from its onset to its J point, so it
    still joins the P and ST-T parts; the largest limb-lead QRS keeps its amplitude. When inferior Q waves keep the
    axis out of the normal range, they are made shallower (down to Q_MIN_MV), and as a last resort turned with the
    QRS."""
    n, at = qrs.shape[1], p.shape[1]
    line = qrs[:, :1] + (qrs[:, -1:] - qrs[:, :1]) * np.linspace(0, 1, n)[None, :]
    dev = qrs - line
    p2p0 = float(np.ptp(_limb6(dev[I], dev[II]), axis=1).max())
    rest = np.concatenate([p, np.zeros_like(qrs), _resample(stt, stt_scale)[:, 1:]], axis=1)  # the beat, no QRS
    r = at + min(max(r, 0), n - 1)

    def finished(i: np.ndarray, ii: np.ndarray) -> np.ndarray:
        out = qrs.copy()
        out[I], out[II] = i + line[I], ii + line[II]
        return out

    def window(q: np.ndarray) -> tuple[int, int, np.ndarray]:
        beat = rest.copy()
        beat[:, at : at + n] = q
        on, off = qrs_bounds(beat, r, reach_s=QRS_REACH_S)
        return on, off, beat[:, max(0, on - int(0.02 * FS)) : max(1, on - int(0.004 * FS))].mean(axis=1)

    gain = 1.0  # the limb QRS is scaled back to its largest limb-lead amplitude
    # how the inferior Q waves are made: after the rotation at full depth, or, only when the normal axis range is
    # otherwise out of reach, shallower, then turning with the QRS
    q_modes = [(False, 1.0), (False, 0.6), (False, 0.0), (True, 1.0)] if e.q_wave_group else [(False, 1.0)]
    q_first, q_scale = q_modes[0]

    def axes(theta: np.ndarray, win: tuple[int, int, np.ndarray]) -> np.ndarray:
        on, off, level = win
        i, ii = _frontal_edit(dev[I], dev[II], theta, e, q_first, q_scale)
        a, b = max(on, at) - at, min(off, at + n - 1) - at + 1  # the part of the window in the QRS
        outside = rest[:, on : off + 1].sum(axis=1) - (off - on + 1) * level
        a_i = (gain * i[:, a:b] + line[I, a:b]).sum(axis=1) + outside[I]
        a_ii = (gain * ii[:, a:b] + line[II, a:b]).sum(axis=1) + outside[II]
        return np.degrees(np.arctan2(a_ii - a_i / 2, a_i))

    def wrap(d: np.ndarray | float) -> np.ndarray:
        return np.abs((np.asarray(d) + 180.0) % 360.0 - 180.0)

    def edited(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, ii = _frontal_edit(dev[I], dev[II], theta, e, q_first, q_scale)
        return i[0], ii[0]

    zero, grid = np.zeros(1), np.radians(np.arange(-180.0, 180.0, 1.0))
    theta = zero
    win = window(finished(*edited(zero)))
    for _ in range(6):
        target = e.axis_target_deg
        if target is None and e.axis_range_deg is not None:
            now = float(axes(zero, win)[0])
            lo, hi = e.axis_range_deg
            if not lo <= now <= hi:
                target = lo if wrap(now - lo) < wrap(now - hi) else hi
        theta = zero
        if target is not None:
            err = wrap(axes(grid, win) - target)
            while err.min() > 2.0 and e.axis_target_deg is None and (q_first, q_scale) != q_modes[-1]:
                q_first, q_scale = q_modes[q_modes.index((q_first, q_scale)) + 1]
                err = wrap(axes(grid, win) - target)
            best = np.nonzero(err <= err.min() + 0.5)[0]  # the smallest rotation among the (near-)best fits
            theta = grid[best[np.argmin(np.abs(grid[best]))]][None]
        i, ii = edited(theta)
        # rotation, initial forces and Q waves move voltage between limb leads: the largest limb-lead QRS keeps
        # its amplitude, so the voltage statement (low or not) stays the one planned
        new_gain = float(np.clip(p2p0 / max(float(np.ptp(_limb6(i, ii), axis=1).max()), 1e-9), 0.5, 2.0))
        new = window(finished(new_gain * i, new_gain * ii))
        if new[:2] == win[:2] and abs(new_gain - gain) < 1e-3:
            break
        gain, win = new_gain, new
    i, ii = edited(theta)
    return finished(gain * i, gain * ii)


def _limb6(i: np.ndarray, ii: np.ndarray) -> np.ndarray:
    """The six limb leads (6, n) of leads I and II (Einthoven / Goldberger)."""
    return np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2])


def _precordial_q(qrs: np.ndarray, e: Edit) -> np.ndarray:
    """Anterior Q waves of an old infarct: the initial forces of V1-V4 replaced by a negative lobe
    (QS complexes where the lead had only a small r; a Q wave before a smaller R in V4)."""
    out = qrs.copy()
    for ld in (V1, V2, V3, V4):
        out[ld] = qrs[ld, 0] + _q_lead(qrs[ld] - qrs[ld, 0], e)
    return out


def beat_parts(tpl: Template, e: Edit, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(P part, QRS, ST-T, T end within ST-T) after the morphology edits (not the timing)."""
    b = tpl.beat * e.amplitude
    p = b[:, : tpl.qrs_on].copy()
    qrs = b[:, tpl.qrs_on : tpl.qrs_off + 1].copy()
    stt = b[:, tpl.qrs_off :].copy()
    t_end = tpl.t_end - tpl.qrs_off
    if e.low_voltage != 1.0:
        qrs = qrs[:, :1] + (qrs - qrs[:, :1]) * e.low_voltage
        stt = stt * (0.5 + 0.5 * e.low_voltage)
        p = p * (0.5 + 0.5 * e.low_voltage)
        qrs[:, -1:] = stt[:, :1]
        qrs[:, :1] = p[:, -1:]
    if e.lvh_gain != 1.0 or e.lvh_limb_gain != 1.0:
        # LVH voltage: every QRS deflection scaled about the straight line joining QRS onset and offset, so the
        # beat stays continuous with its P and ST-T parts
        base = qrs[:, :1] + (qrs[:, -1:] - qrs[:, :1]) * np.linspace(0, 1, qrs.shape[1])[None, :]
        gain = np.array([e.lvh_limb_gain] * 2 + [e.lvh_gain] * 6)[:, None]
        qrs = base + (qrs - base) * gain
    if e.bbb:
        qrs = _bbb_forces(_resample(qrs, e.qrs_stretch), e.bbb, rng)
        # secondary ST-T change: T opposite to the terminal QRS force in the leads that carry it
        stt = stt.copy()
        _, t = _t_component(stt, t_end)
        leads = (V1, V2) if e.bbb == "rbbb" else (I, V5, V6)
        for ld in leads:
            stt[ld] -= 1.6 * t[ld]
        qrs[:, -1] = stt[:, 0]
    if e.low_voltage != 1.0:
        # limb-lead ST elevation starts at the J point, which the measured QRS includes: leave room for it
        limb_ste = e.ste_mv if e.ste_group in ("lateral", "inferior") else 0.0
        qrs = _limit_limb_voltage(qrs, max(0.15, LOW_VOLTAGE_LIMB_MV - limb_ste))
    if e.pre_excitation_s:
        p, qrs, stt = _pre_excite(p, qrs, stt, t_end, e, rng)
    stt_in = stt
    stt = _edit_stt(stt, t_end, e)
    if e.std_group or e.lvh_strain or e.t_flat != 1.0 or e.u_wave_mv:
        pr = pr_level(p)
        if e.std_group or e.lvh_strain:
            stt = _lateral_st_t(stt, stt_in, t_end, e, pr)
        if e.t_flat != 1.0 or e.u_wave_mv:
            stt = _t_flat_u(stt, stt_in, t_end, e, pr)
    if e.rhythm in ("af", "flutter"):
        p[:] = p[:, -1:] * np.linspace(0, 1, p.shape[1])[None, :]  # no P wave: a ramp to the QRS start
    # Q waves and the frontal axis last: the axis is solved on the finished beat. Edits that replace the initial
    # forces (Q waves, LAFB, left axis deviation) start QRS_LEAD_IN_S before the template's onset, which lies where
    # the spatial velocity reaches 12 % of its peak: the initial forces before it belong to the QRS they replace
    # (the returned QRS part then starts there); a rotation alone keeps the template's split
    frontal = e.axis_target_deg is not None or e.axis_range_deg is not None or e.lafb or e.q_wave_group
    if frontal:
        initial = e.lafb or bool(e.q_wave_group) or (e.axis_target_deg is not None and e.axis_target_deg < -30)
        k = min(int(QRS_LEAD_IN_S * FS), p.shape[1] - int(0.03 * FS)) if initial else 0
        ext = np.concatenate([p[:, p.shape[1] - k :], qrs], axis=1)
        if e.q_wave_group and "anterior" in e.q_wave_group.split("+"):
            ext = _precordial_q(ext, e)
        r = k + int(round((tpl.r - tpl.qrs_on) * (e.qrs_stretch if e.bbb else 1.0)))
        stt_scale = (60.0 / e.hr / tpl.rr_s) ** (1 / 3) * e.qt_mult
        ext = _frontal_qrs(p[:, : p.shape[1] - k], ext, stt, e, r, stt_scale)
        p, qrs = p[:, : p.shape[1] - k], ext  # the lead-in moves into the QRS part (before any PR gap)
    return p, qrs, stt, t_end


def _p_wave_end(p: np.ndarray) -> int:
    """Index of the P wave's end in a P part (TP baseline, P wave, PR segment): after the largest deviation of
    lead II from the TP baseline (the last 40 ms, where the QRS onset may begin, left out), the first sample
    where that deviation falls below a fifth of its peak."""
    dev = np.abs(p[II] - np.median(p[II, : int(0.03 * FS)]))
    k = int(np.argmax(dev[: max(1, p.shape[1] - int(0.04 * FS))]))
    below = np.nonzero(dev[k:] < 0.2 * dev[k])[0]
    return k + int(below[0]) if len(below) else p.shape[1] - 1


def _pre_excite(
    p: np.ndarray, qrs: np.ndarray, stt: np.ndarray, t_end: int, e: Edit, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ventricular pre-excitation: the PR segment removed (the accessory pathway activates the ventricles as
    soon as the atria), a slurred delta wave of ``e.pre_excitation_s`` before the QRS, and secondary ST-T change."""
    cut = min(p.shape[1], _p_wave_end(p) + int(0.006 * FS))
    p = p[:, :cut].copy()
    n_d = max(2, int(round(e.pre_excitation_s * FS)))
    # the delta wave points the way of each lead's main QRS deflection and rises to 35-50 % of it
    dev = qrs - qrs[:, :1]
    main = dev[np.arange(8), np.abs(dev).argmax(axis=1)]
    v = rng.uniform(0.35, 0.5) * main
    x = np.linspace(0, 1, n_d + 1)[1:]
    delta = p[:, -1:] + (qrs[:, :1] + v[:, None] - p[:, -1:]) * x[None, :] ** 1.4  # slow, then faster: slurred
    fade = np.zeros(qrs.shape[1])
    k = max(2, int(0.5 * qrs.shape[1]))
    fade[:k] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, k))
    qrs = np.concatenate([delta, qrs + v[:, None] * fade[None, :]], axis=1)
    # secondary ST-T change: T reduced and inverted where the delta wave is largest
    stt = stt.copy()
    _, t = _t_component(stt, t_end)
    for ld in np.nonzero(np.abs(v) >= 0.5 * np.abs(v).max())[0]:
        stt[ld] -= 1.4 * t[ld]
    qrs[:, -1] = stt[:, 0]
    return p, qrs, stt


def _ectopic_p(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The P part of a premature atrial complex: the sinus P wave replaced by an ectopic one (low atrial
    focus: inverted in II, smaller, opposite in V1), on the same trend."""
    trend = p[:, :1] + (p[:, -1:] - p[:, :1]) * np.linspace(0, 1, p.shape[1])[None, :]
    size = rng.uniform(0.5, 0.9)
    gain = size * np.array([0.5, -1.0, -0.6, -0.3, 0.3, 0.5, 0.6, 0.6])
    return trend + gain[:, None] * (p - trend)


@dataclass
class Schedule:
    """When each beat happens: R-peak sample indices ``r``, each beat's ``kind`` ("n" conducted sinus or
    flutter beat, "pvc", "pac"), its extra PR ``gap_s`` (s, on top of the edit's fixed PR extension) and the
    sample indices ``lone_p`` at which non-conducted P waves sit (the R time they would have had, with
    no extra PR); in atrial flutter, ``f_cycles`` are the times (s) at which F-wave cycles start."""

    r: np.ndarray
    kind: np.ndarray
    gap_s: np.ndarray
    lone_p: np.ndarray
    f_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0))


def r_times(e: Edit, rng: np.random.Generator, tpl_rr: float) -> tuple[np.ndarray, np.ndarray]:
    """R-peak sample indices over the 10 s record, and a mask of premature ventricular beats."""
    s = beat_schedule(e, rng, tpl_rr)
    return s.r, s.kind == "pvc"


def _respiration(e: Edit, rng: np.random.Generator):
    """The sinus cycle's phasic factor ``t -> 1 + depth sin(2 pi f t + phase)`` (1 without sinus arrhythmia)."""
    if not e.sinus_arrhythmia:
        return lambda t: 1.0
    f, ph = rng.uniform(0.2, 0.3), rng.uniform(0, 2 * np.pi)
    return lambda t: 1.0 + e.sinus_arrhythmia * np.sin(2 * np.pi * f * t + ph)


def _pick_beats(rng: np.random.Generator, cand: list[int], n: int, avoid: set[int]) -> set[int]:
    """Up to ``n`` beat numbers from ``cand``, none in ``avoid`` or next to it or to each other."""
    out: set[int] = set()
    pool = [c for c in cand if not {c - 1, c, c + 1} & avoid]
    while len(out) < n and pool:
        c = int(pool[int(rng.integers(len(pool)))])
        out.add(c)
        pool = [x for x in pool if abs(x - c) > 1]
    return out


def beat_schedule(e: Edit, rng: np.random.Generator, tpl_rr: float) -> Schedule:
    """Beat timing over the 10 s record (see :class:`Schedule`): sinus rhythm with 3 % variability (with
    the respiratory modulation of sinus arrhythmia), fibrillation's irregular RR, flutter's RR fixed to the
    F-wave cycle, or Wenckebach groups; premature ventricular beats with a compensatory pause, premature
    atrial beats with a non-compensatory one."""
    if e.wenckebach:
        return _wenckebach_schedule(e, rng)
    if e.rhythm == "flutter":
        return _flutter_schedule(e, rng)
    rr = 60.0 / e.hr
    times, kinds = [], []
    t = rng.uniform(0.15, 0.15 + rr)
    pvc_at = set()
    n_beats = int(10 / rr)
    if e.n_pvc:
        cand = list(range(2, max(3, n_beats - 2)))
        pvc_at = set(rng.choice(cand, size=min(e.n_pvc, len(cand)), replace=False).tolist())
    pac_at = _pick_beats(rng, list(range(2, max(3, n_beats - 2))), e.n_pac, pvc_at) if e.n_pac else set()
    resp = _respiration(e, rng)
    k = 0
    while t < N_SAMPLES / FS - 0.05:
        times.append(t)
        kinds.append("pvc" if k in pvc_at else "pac" if k in pac_at else "n")
        rr_k = rr * resp(t)
        if e.rhythm == "af":
            step = rr * float(np.clip(rng.lognormal(0.0, AF_RR_SIGMA), 0.55, 1.8))
        else:
            step = rr_k * (1 + rng.normal(0, 0.03))
        if k + 1 in pvc_at:
            step = rr * rng.uniform(0.55, 0.65)  # the ectopic beat comes early ...
        if k in pvc_at:
            prev = times[-2] if len(times) > 1 else times[-1] - rr
            step = 2 * rr - (times[-1] - prev)  # ... and the next sinus beat keeps the sinus rhythm: compensatory pause
        if k + 1 in pac_at:
            step = rr_k * rng.uniform(0.6, 0.7)  # the premature atrial beat ...
        if k in pac_at:
            step = rr_k * rng.uniform(1.03, 1.15)  # ... resets the sinus node: the pause is not compensatory
        t += step
        k += 1
    n = len(times)
    return Schedule((np.asarray(times) * FS).astype(int), np.asarray(kinds), np.zeros(n), np.zeros(0, dtype=int))


def _flutter_schedule(e: Edit, rng: np.random.Generator) -> Schedule:
    """Atrial flutter with fixed conduction: F-wave cycles of 60 / ``e.flutter_rate`` s (0.5 % cycle-length
    variability: a macro-reentrant circuit is nearly metronomic), every ``e.flutter_conduction``-th cycle
    conducted with a fixed delay, so the ventricular rhythm is regular and locked to the F waves. A premature
    ventricular beat is followed by the next-but-one conducted cycle (compensatory pause)."""
    tf, cond = 60.0 / e.flutter_rate, e.flutter_conduction
    cycles = np.cumsum(np.r_[-rng.uniform(0.5, 0.5 + tf), tf * (1 + 0.005 * rng.standard_normal(int(12 / tf) + 4))])
    delay = rng.uniform(0.0, tf)  # where in the F-wave cycle the conducted QRS falls
    end = N_SAMPLES / FS - 0.05
    slots = [c + delay for c in cycles[::cond] if 0.15 <= c + delay < end]
    pvc_at = _pick_beats(rng, list(range(2, max(3, len(slots) - 2))), e.n_pvc, set()) if e.n_pvc else set()
    times, kinds = [], []
    for k, t in enumerate(slots):
        if k in pvc_at:  # the ectopic beat comes early and the F wave of this slot finds the AV node refractory
            # (at least 320-380 ms after the previous QRS: at 2:1 conduction 55-65 % of the cycle would fall into
            # the ventricles' refractory period)
            coupling = max((t - slots[k - 1]) * rng.uniform(0.55, 0.65), rng.uniform(0.32, 0.38))
            times.append(slots[k - 1] + coupling)
            kinds.append("pvc")
            continue
        times.append(t)
        kinds.append("n")
    n = len(times)
    return Schedule(
        (np.asarray(times) * FS).astype(int), np.asarray(kinds), np.zeros(n), np.zeros(0, dtype=int), cycles
    )


def _wenckebach_schedule(e: Edit, rng: np.random.Generator) -> Schedule:
    """Sinus P waves at ``e.hr`` conducted in groups of ``e.wenckebach``: the PR grows by d (70-100 ms), d/2,
    d/4 ... until the last P wave of the group is blocked. Premature ventricular beats fall in the pauses, 0.3-0.45
    s after the blocked P wave, early enough that the AV node has recovered when the next P wave comes (so they
    leave the grouping, the pause's P wave and the next PR as they are); the first pause keeps its P wave alone
    when there are others to take them."""
    pp, n = 60.0 / e.hr, e.wenckebach
    d = rng.uniform(0.07, 0.1)
    gaps = np.cumsum([0.0] + [d * 0.5**i for i in range(n - 2)])  # extra PR of the n - 1 conducted beats
    pos = int(rng.integers(n))  # where in its group the record starts
    resp = _respiration(e, rng)
    end = N_SAMPLES / FS - 0.05
    times, gap_s, lone, room = [], [], [], []  # room: (earliest, latest) time of an ectopic beat in each pause
    a = rng.uniform(0.15, 0.15 + pp)
    while a < end:
        step = pp * resp(a) * (1 + rng.normal(0, 0.02))
        if pos == n - 1:
            lone.append(a)
            room.append((a + 0.3, min(end, a + step - 0.3)) if times else (end, end))
            pos = 0
            a += step
            continue
        r = a + gaps[pos]
        if r >= end:
            break
        times.append(r)
        gap_s.append(gaps[pos])
        pos += 1
        a += step
    kinds = ["n"] * len(times)
    usable = [i for i, (lo, hi) in enumerate(room) if hi - lo > 0.15 and times and lo < times[-1]]
    if e.n_pvc and usable:
        for i in _pick_beats(rng, usable[1:] if len(usable) > 1 else usable, e.n_pvc, set()):
            lo, hi = room[i]
            times.append(rng.uniform(lo, min(hi, lo + 0.15)))
            kinds.append("pvc")
            gap_s.append(0.0)
    order = np.argsort(times)
    return Schedule(
        (np.asarray(times)[order] * FS).astype(int),
        np.asarray(kinds)[order],
        np.asarray(gap_s)[order],
        (np.asarray(lone) * FS).astype(int),
    )


def synthesize(tpl: Template, e: Edit, rng: np.random.Generator) -> np.ndarray:
    """The edited 8-lead record, (8, 5000) mV, before noise."""
    p, qrs, stt, t_end = beat_parts(tpl, e, rng)
    sch = beat_schedule(e, rng, tpl.rr_s)
    rs = sch.r
    p_pac = _ectopic_p(p, rng) if (sch.kind == "pac").any() else p
    out = np.zeros((8, N_SAMPLES))
    r_in_qrs = (tpl.r - tpl.qrs_on) * (e.qrs_stretch if e.bbb else 1.0)
    # the QRS part may start before the template's onset: the axis and Q-wave edits take a lead-in from the P part,
    # and the delta wave of pre-excitation comes before the QRS
    n_tpl = tpl.qrs_off - tpl.qrs_on + 1
    r_in_qrs += qrs.shape[1] - (max(2, int(round(n_tpl * e.qrs_stretch))) if e.bbb else n_tpl)

    def place(beat: np.ndarray, start: int) -> None:
        lo, hi = max(0, start), min(N_SAMPLES, start + beat.shape[1])
        if hi > lo:
            seg = beat[:, lo - start : hi - start].copy()
            # short tapers at both ends so clipped or overlapping beats join without steps
            k = min(10, seg.shape[1] // 2)
            if k:
                seg[:, :k] *= np.linspace(0, 1, k)[None, :]
                seg[:, -k:] *= np.linspace(1, 0, k)[None, :]
            out[:, lo:hi] += seg

    for j, r in enumerate(rs):
        rr = (rs[j + 1] - r) / FS if j + 1 < len(rs) else (r - rs[j - 1]) / FS if j else 60 / e.hr
        if len(sch.lone_p) and j:
            rr = (r - rs[j - 1]) / FS  # QT follows the preceding cycle: the beat before a pause keeps its T
        if sch.kind[j] == "pvc":
            beat, r_pos = _pvc_beat(tpl, e, rng)
        else:
            gap = int((e.pr_extra_s + sch.gap_s[j]) * FS)
            s = (rr / tpl.rr_s) ** (1 / 3) * e.qt_mult
            stt_k = _resample(stt, s)
            pj = p_pac if sch.kind[j] == "pac" else p
            ramp = np.linspace(pj[:, -1], qrs[:, 0], gap + 2)[1:-1].T if gap else np.zeros((8, 0))
            beat = np.concatenate([pj, ramp, qrs, stt_k[:, 1:]], axis=1)
            r_pos = pj.shape[1] + gap + int(round(r_in_qrs))
        place(beat, r - r_pos)
    if len(sch.lone_p):
        # a blocked P wave: the P part alone, its trend removed so that it starts and ends on the baseline
        lone = p - (p[:, :1] + (p[:, -1:] - p[:, :1]) * np.linspace(0, 1, p.shape[1])[None, :])
        r_pos = p.shape[1] + int(e.pr_extra_s * FS) + int(round(r_in_qrs))
        for a in sch.lone_p:
            place(lone, int(a) - r_pos)
    if e.rhythm == "flutter":
        out += _flutter_waves(e, rng, sch.f_cycles) * (0.5 + 0.5 * e.low_voltage)  # attenuated like the P wave
    return out


def _flutter_waves(e: Edit, rng: np.random.Generator, cycles: np.ndarray) -> np.ndarray:
    """Sawtooth F waves over the F-wave ``cycles`` (start times, s): a slow descent over 65-80 % of each cycle
    and a fast return, 0.2-0.3 mV peak to peak in II, negative in the inferior leads and positive in V1."""
    t = np.arange(N_SAMPLES) / FS
    i = np.clip(np.searchsorted(cycles, t, side="right") - 1, 0, len(cycles) - 2)
    ph = (t - cycles[i]) / (cycles[i + 1] - cycles[i])
    fall = rng.uniform(0.65, 0.8)
    saw = np.where(ph < fall, 0.5 - ph / fall, -0.5 + (ph - fall) / (1 - fall))
    k = int(0.012 * FS)
    saw = np.convolve(saw, np.ones(k) / k, mode="same")  # round the corners
    gain = np.array([0.12, 1.0, -0.7, -0.45, -0.2, 0.1, 0.2, 0.25]) * rng.uniform(0.2, 0.3)
    return gain[:, None] * saw[None, :]


def _pvc_beat(tpl: Template, e: Edit, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A wide ectopic beat: no P wave, QRS ×2.3 with a changed axis, ST-T opposite to the QRS."""
    b = tpl.beat * e.amplitude
    qrs = _resample(b[:, tpl.qrs_on : tpl.qrs_off + 1], 2.3)
    flip = np.array([-1.0, 1.2, 1.4, 1.2, -0.8, -1.2, -1.4, -1.4])
    qrs = qrs * flip[:, None] * 1.3
    stt = b[:, tpl.qrs_off :].copy()
    _, t = _t_component(stt, tpl.t_end - tpl.qrs_off)
    net = qrs.sum(axis=1)
    stt = (
        stt
        - t
        - np.sign(net)[:, None]
        * np.abs(t).max(axis=1, keepdims=True)
        * (t != 0)
        * 1.5
        * (np.abs(t) / (np.abs(t).max(axis=1, keepdims=True) + 1e-9))
    )
    stt[:, 0] = qrs[:, -1]
    lead_in = np.zeros((8, int(0.05 * FS)))
    beat = np.concatenate([lead_in, qrs, stt[:, 1:]], axis=1)
    return beat, lead_in.shape[1] + int(qrs.shape[1] * 0.45)


def add_noise(sig8: np.ndarray, e: Edit, rng: np.random.Generator) -> np.ndarray:
    """Baseline wander (respiration-like), mains-free white noise, and AF fibrillatory waves."""
    t = np.arange(N_SAMPLES) / FS
    out = sig8.copy()
    for ld in range(8):
        wander = 0.04 * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * t + rng.uniform(0, 2 * np.pi))
        wander += 0.03 * np.sin(2 * np.pi * rng.uniform(0.03, 0.08) * t + rng.uniform(0, 2 * np.pi))
        out[ld] += wander + rng.normal(0, 0.008, N_SAMPLES)
    if e.rhythm == "af":
        f = np.zeros(N_SAMPLES)
        for _ in range(3):
            f += np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 2 * np.pi))
        f *= rng.uniform(0.05, 0.1) / (np.abs(f).max() + 1e-9)
        gain = np.array([0.5, 1.0, 1.0, 0.7, 0.5, 0.4, 0.4, 0.4])
        out += gain[:, None] * f[None, :]
    return out


def derive_12(sig8: np.ndarray) -> np.ndarray:
    """(8, N) I, II, V1–V6 -> (12, N) in canonical order: III = II − I, aVR = −(I + II)/2,
    aVL = I − II/2, aVF = II − I/2."""
    i, ii = sig8[0], sig8[1]
    return np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2, *sig8[2:]])
