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
    if e.bbb:
        qrs = _bbb_forces(_resample(qrs, e.qrs_stretch), e.bbb, rng)
        # secondary ST-T change: T opposite to the terminal QRS force in the leads that carry it
        stt = stt.copy()
        _, t = _t_component(stt, t_end)
        leads = (V1, V2) if e.bbb == "rbbb" else (I, V5, V6)
        for ld in leads:
            stt[ld] -= 1.6 * t[ld]
        qrs[:, -1] = stt[:, 0]
    if e.pre_excitation_s:
        p, qrs, stt = _pre_excite(p, qrs, stt, t_end, e, rng)
    stt = _edit_stt(stt, t_end, e)
    if e.rhythm in ("af", "flutter"):
        p[:] = p[:, -1:] * np.linspace(0, 1, p.shape[1])[None, :]  # no P wave: a ramp to the QRS start
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
            step = rr * float(np.clip(rng.lognormal(0.0, 0.2), 0.55, 1.8))
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
    if e.pre_excitation_s:
        r_in_qrs += qrs.shape[1] - (tpl.qrs_off - tpl.qrs_on + 1)  # the delta wave comes before the QRS

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
