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
* low voltage: all QRS complexes scaled so limb-lead amplitudes stay below 0.5 mV.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .morphology import FS, N_SAMPLES, Template

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
    lafb: bool = False  # left anterior fascicular block pattern (qR in aVL, rS in II/III/aVF)
    lvh_gain: float = 1.0  # precordial/limb QRS voltage gain of left ventricular hypertrophy
    lvh_strain: bool = False  # lateral ST depression with asymmetric T inversion (LVH with strain)
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
    stt = _edit_stt(stt, t_end, e)
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
            step = rr * float(np.clip(rng.lognormal(0.0, AF_RR_SIGMA), 0.55, 1.8))
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
