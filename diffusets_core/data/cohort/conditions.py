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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .morphology import FS, N_SAMPLES, Template

I, II, V1, V2, V3, V4, V5, V6 = range(8)
GROUPS = {"anterior": [V1, V2, V3, V4], "inferior": [II], "lateral": [I, V5, V6]}
CLASSES = (
    "normal",
    "sinus_bradycardia",
    "sinus_tachycardia",
    "atrial_fibrillation",
    "av_block_1",
    "rbbb",
    "lbbb",
    "st_elevation",
    "t_inversion",
    "peaked_t",
    "long_qt",
    "pvc",
    "low_voltage",
)


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
    lafb: bool = False  # left anterior fascicular block pattern (qR in aVL, rS in II/III/aVF)
    lvh_gain: float = 1.0  # precordial QRS voltage gain of left ventricular hypertrophy (< 1: the plan's voltage cap)
    lvh_limb_gain: float = 1.0  # limb-lead (I, II) QRS voltage gain of left ventricular hypertrophy
    lvh_strain: bool = False  # lateral ST depression with asymmetric T inversion (LVH with strain)
    lvh_strain_mv: float = 0.0  # strain: depth of the inverted T's nadir in I and V6 (positive number, mV)
    q_wave_group: str | None = None  # pathological Q waves: "inferior" | "anterior"
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
        stt[leads] -= 2.0 * t[leads]
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
    stt_in = stt
    stt = _edit_stt(stt, t_end, e)
    if e.std_group or e.lvh_strain or e.t_flat != 1.0 or e.u_wave_mv:
        pr = pr_level(p)
        if e.std_group or e.lvh_strain:
            stt = _lateral_st_t(stt, stt_in, t_end, e, pr)
        if e.t_flat != 1.0 or e.u_wave_mv:
            stt = _t_flat_u(stt, stt_in, t_end, e, pr)
    if e.rhythm == "af":
        p[:] = p[:, -1:] * np.linspace(0, 1, p.shape[1])[None, :]  # no P wave: a ramp to the QRS start
    return p, qrs, stt, t_end


def r_times(e: Edit, rng: np.random.Generator, tpl_rr: float) -> tuple[np.ndarray, np.ndarray]:
    """R-peak sample indices over the 10 s record, and a mask of premature ventricular beats."""
    rr = 60.0 / e.hr
    times, kinds = [], []
    t = rng.uniform(0.15, 0.15 + rr)
    pvc_at = set()
    if e.n_pvc:
        n_beats = int(10 / rr)
        cand = list(range(2, max(3, n_beats - 2)))
        pvc_at = set(rng.choice(cand, size=min(e.n_pvc, len(cand)), replace=False).tolist())
    k = 0
    while t < N_SAMPLES / FS - 0.05:
        times.append(t)
        kinds.append(k in pvc_at)
        if e.rhythm == "af":
            step = rr * float(np.clip(rng.lognormal(0.0, 0.2), 0.55, 1.8))
        else:
            step = rr * (1 + rng.normal(0, 0.03))
        if k + 1 in pvc_at:
            step = rr * rng.uniform(0.55, 0.65)  # the ectopic beat comes early ...
        if k in pvc_at:
            prev = times[-2] if len(times) > 1 else times[-1] - rr
            step = 2 * rr - (times[-1] - prev)  # ... and the next sinus beat keeps the sinus rhythm: compensatory pause
        t += step
        k += 1
    return (np.asarray(times) * FS).astype(int), np.asarray(kinds, dtype=bool)


def synthesize(tpl: Template, e: Edit, rng: np.random.Generator) -> np.ndarray:
    """The edited 8-lead record, (8, 5000) mV, before noise."""
    p, qrs, stt, t_end = beat_parts(tpl, e, rng)
    rs, pvc = r_times(e, rng, tpl.rr_s)
    out = np.zeros((8, N_SAMPLES))
    r_in_qrs = (tpl.r - tpl.qrs_on) * (e.qrs_stretch if e.bbb else 1.0)
    gap = int(e.pr_extra_s * FS)
    for j, r in enumerate(rs):
        rr = (rs[j + 1] - r) / FS if j + 1 < len(rs) else (r - rs[j - 1]) / FS if j else 60 / e.hr
        if pvc[j]:
            beat, r_pos = _pvc_beat(tpl, e, rng)
        else:
            s = (rr / tpl.rr_s) ** (1 / 3) * e.qt_mult
            stt_k = _resample(stt, s)
            ramp = np.linspace(p[:, -1], qrs[:, 0], gap + 2)[1:-1].T if gap else np.zeros((8, 0))
            beat = np.concatenate([p, ramp, qrs, stt_k[:, 1:]], axis=1)
            r_pos = p.shape[1] + gap + int(round(r_in_qrs))
        start = r - r_pos
        lo, hi = max(0, start), min(N_SAMPLES, start + beat.shape[1])
        if hi > lo:
            seg = beat[:, lo - start : hi - start].copy()
            # short tapers at both ends so clipped or overlapping beats join without steps
            k = min(10, seg.shape[1] // 2)
            if k:
                seg[:, :k] *= np.linspace(0, 1, k)[None, :]
                seg[:, -k:] *= np.linspace(1, 0, k)[None, :]
            out[:, lo:hi] += seg
    return out


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
