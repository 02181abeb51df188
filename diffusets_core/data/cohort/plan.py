"""Who each cohort record is: its findings, heart rate, patient and the edit parameters.

A record's findings are drawn by :func:`.findings.draw_findings`: exactly one rhythm, then 0-3 further findings
under the catalogue's compatibility rules, never completing a held-out combination. :func:`plan_edit` turns
that set into one :class:`~.conditions.Edit`: the rhythm sets the heart rate, then every finding's planner
(:data:`FINDING_PLANNERS`) sets its own edit parameters, so edits compose (one beat carries all of them).

Heart rates per rhythm (bpm): sinus rhythm 62-95, sinus bradycardia 42-56, sinus tachycardia 106-150, atrial
fibrillation 70-125 (mean ventricular rate), sinus arrhythmia 62-90; atrial flutter's ventricular rate is
its F-wave rate over the conduction ratio. The rates stay a few bpm clear of the 60 and 100 bpm statement
limits so that the report's rate statement is the intended one. Some findings cap the rate so that their P
waves stay readable: premature atrial complexes and pre-excitation at most 120 /min (the P wave must come after
the previous T wave), Wenckebach at most 75 /min and low enough that the blocked P wave clears the T wave (at
least 62 /min with sinus rhythm or sinus arrhythmia, 48 /min with bradycardia).

QRS axis: a record with an axis finding (left or right axis deviation, LAFB) gets a target axis well inside
its class; every other record keeps its axis within -15 to +75 degrees (:data:`NORMAL_AXIS_DEG`, 15 degrees inside
the normal -30 to +90), turned there only when the template, its bundle branch block or its Q waves put it
outside.

Rate limits of a finding's planner: 1st degree AV block keeps the rate <= 82 /min (the long PR would put the P
wave into the previous T wave); T flattening with U waves keeps it <= 85 /min (<= 68 /min with a 1st degree AV
block), where the U wave ends before the next P wave.

QRS voltage: a record without an LVH finding (or low voltage) has its precordial QRS scaled down where the GAN
template (after the amplitude below) would come within :data:`LVH_CAP_MARGIN` of the Sokolow-Lyon or Cornell limit
(about 5 % of templates); LVH records are planned for a Sokolow-Lyon voltage of 3.8-5.0 mV.

Patients: age ~ Normal(58, 17) clipped to 18-95 years, 52 % men; one to two records per subject.
Documented effects on the signal: voltage falls with age (x(1.15 - 0.005 (age - 20))); women have 10 %
lower voltage and a 3 % longer QT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .conditions import Edit, derive_12, pr_level
from .findings import draw_findings, finding
from .interpreter import CORNELL_LVH_MV, SOKOLOW_LVH_MV
from .morphology import FS, Template

__all__ = [
    "RATE_RANGES",
    "FINDING_PLANNERS",
    "LVH_CAP_MARGIN",
    "PlanContext",
    "subject_of",
    "patient",
    "qrs_voltages",
    "plan_edit",
    "plan_record",
]

#: Margin (mV) by which a record without an LVH finding stays below the Sokolow-Lyon and Cornell limits
#: (:func:`plan_edit` caps the precordial voltage of the few GAN templates that come closer).
LVH_CAP_MARGIN = 0.3

#: Heart rate range (bpm) of each rhythm whose rate is drawn directly.
RATE_RANGES: dict[str, tuple[float, float]] = {
    "sinus_rhythm": (62.0, 95.0),
    "sinus_bradycardia": (42.0, 56.0),
    "sinus_tachycardia": (106.0, 150.0),
    "atrial_fibrillation": (70.0, 125.0),
    "sinus_arrhythmia": (62.0, 90.0),
    "atrial_flutter": (70.0, 110.0),  # replaced by the flutter planner (F-wave rate / conduction ratio)
}


def subject_of(index: int) -> int:
    """Records 3k, 3k+1 share a subject, 3k+2 has its own: 1.5 records per subject on average."""
    return 10_000_000 + (index // 3) * 2 + (1 if index % 3 == 2 else 0)


def patient(seed: int, subject: int) -> tuple[float, str]:
    """Age (years) and sex ("M"/"F") of a subject, deterministic for ``(seed, subject)``."""
    rng = np.random.default_rng([seed, subject, 7])
    age = float(np.clip(np.round(rng.normal(58, 17)), 18, 95))
    sex = "M" if rng.random() < 0.52 else "F"
    return age, sex


@dataclass
class PlanContext:
    """What a finding's planner may read: the template, the record's generator, patient and all its findings."""

    tpl: Template
    rng: np.random.Generator
    age: float
    sex: str
    findings: frozenset[str]


def _t_amp(tpl: Template, lead: int) -> float:
    seg = tpl.beat[lead, tpl.qrs_off + int(0.06 * FS) : tpl.t_end]
    return float(np.abs(seg).max()) if len(seg) else 0.3


def _stt_scale(e: Edit) -> float:
    """The factor the synthesiser applies to the ST-T part before the T-wave edits (low voltage shrinks it)."""
    return 0.5 + 0.5 * e.low_voltage if e.low_voltage != 1.0 else 1.0


def _qt_parts(tpl: Template) -> tuple[float, float]:
    """(QT, QRS) of the template in seconds."""
    return (tpl.t_end - tpl.qrs_on) / FS, (tpl.qrs_off - tpl.qrs_on) / FS


# --- planners of the findings. Each sets only its own fields of the Edit; heart rate and amplitude are set first.


def _af(e: Edit, c: PlanContext) -> None:
    e.rhythm = "af"


def _av_block_1(e: Edit, c: PlanContext) -> None:
    e.pr_extra_s = c.rng.uniform(0.10, 0.15)
    # a long PR at a fast rate (or after a long QT) puts the P wave into the previous T wave, where no reader finds it
    e.hr = min(e.hr, 68.0 if "long_qt" in c.findings else 82.0)


def _bbb(kind: str) -> Callable[[Edit, PlanContext], None]:
    def plan(e: Edit, c: PlanContext) -> None:
        qrs_ms = (c.tpl.qrs_off - c.tpl.qrs_on) * 1000 / FS
        e.bbb = kind
        e.qrs_stretch = c.rng.uniform(135, 165) / qrs_ms

    return plan


def _ste(group: str) -> Callable[[Edit, PlanContext], None]:
    def plan(e: Edit, c: PlanContext) -> None:
        e.ste_group = group
        e.ste_mv = c.rng.uniform(0.35, 0.5) if group == "anterior" else c.rng.uniform(0.2, 0.35)

    return plan


def _twi(group: str) -> Callable[[Edit, PlanContext], None]:
    leads = {"lateral": (0, 6, 7), "anterior": (3, 4, 5)}[group]  # I, V5, V6 / V2, V3, V4 of the 8 leads

    def plan(e: Edit, c: PlanContext) -> None:
        e.twi_group = group
        # an inverted T of 0.25-0.5 mV in the group's median lead: a flat template T would stay above -0.1 mV
        t = float(np.median([_t_amp(c.tpl, ld) for ld in leads])) * e.amplitude * _stt_scale(e)
        e.twi_gain = max(1.0, c.rng.uniform(0.25, 0.5) / max(t, 0.05))

    return plan


def _peaked_t(e: Edit, c: PlanContext) -> None:
    # V3 T to 1.7-2.3 mV before filtering (x1.15 above 100 bpm, where the narrower T loses more to the 40 Hz
    # low-pass), at most 5x its normal height; low voltage shrinks the ST-T before the T is raised
    target = c.rng.uniform(1.7, 2.3) * (1.15 if e.hr > 100 else 1.0)
    scale = _stt_scale(e)
    e.peaked_gain = min(5.0 / scale, target / max(0.15, e.amplitude * scale * _t_amp(c.tpl, 4)))


def _long_qt(e: Edit, c: PlanContext) -> None:
    qt0, qrs = _qt_parts(c.tpl)
    qtcf_target = c.rng.uniform(0.51, 0.57)
    # the synthesiser scales ST-T by (RR/RR_template)^(1/3), so QTcF ~ (qrs + stt * m) / RR_template^(1/3)
    e.qt_mult *= (qtcf_target * np.cbrt(c.tpl.rr_s) - qrs) / max(0.1, qt0 - qrs)


def _pvc(e: Edit, c: PlanContext) -> None:
    e.n_pvc = int(c.rng.integers(1, 3))


def _low_voltage(e: Edit, c: PlanContext) -> None:
    limb = derive_12(c.tpl.beat)[:6, c.tpl.qrs_on : c.tpl.qrs_off + 1]
    # limb-lead ST elevation starts at the J point, inside the measured QRS: leave room for it
    room = 0.1 if {"st_elevation_lateral", "st_elevation_inferior"} & c.findings else 0.0
    target = c.rng.uniform(0.25, 0.4) - room
    e.low_voltage = target / max(1e-3, e.amplitude * float(np.ptp(limb, axis=1).max()))


#: axis findings whose planner sets the frontal QRS axis; a record without one keeps its axis in NORMAL_AXIS_DEG
AXIS_FINDINGS = ("lafb", "left_axis_deviation", "right_axis_deviation")
#: frontal QRS axis (degrees) of a record without an axis finding: 15 degrees inside the normal -30..+90, so that
#: neither deviation is read (a few GAN templates lie at -45 or +100 natively, and BBB forces or inferior Q waves
#: move the axis further; the synthesiser rotates only a finished QRS outside this range, to its nearest bound)
NORMAL_AXIS_DEG = (-15.0, 75.0)
#: the lower bound for a record with inferior Q waves (an old inferior infarct turns the axis left; a template with a
#: small QRS cannot be turned back to -15 degrees without turning its Q waves out of the inferior leads)
NORMAL_AXIS_INFERIOR_Q_DEG = -22.0


def _lafb(e: Edit, c: PlanContext) -> None:
    # well inside LAFB's -45..-90; the synthesiser adds the inferior-rightward initial forces (q in aVL, r in II)
    e.lafb = True
    e.axis_target_deg = c.rng.uniform(-78.0, -55.0)


def _axis(lo: float, hi: float) -> Callable[[Edit, PlanContext], None]:
    def plan(e: Edit, c: PlanContext) -> None:
        e.axis_target_deg = c.rng.uniform(lo, hi)

    return plan


def _q_waves(group: str) -> Callable[[Edit, PlanContext], None]:
    def plan(e: Edit, c: PlanContext) -> None:
        e.q_wave_group = group if not e.q_wave_group else f"{e.q_wave_group}+{group}"
        if not e.q_wave_mv:  # one depth and length for both groups of a record
            e.q_wave_s = c.rng.uniform(0.045, 0.055)
            e.q_wave_mv = c.rng.uniform(0.2, 0.35) * e.amplitude
            if "low_voltage" in c.findings:
                e.q_wave_mv = c.rng.uniform(0.22, 0.28)

    return plan


def qrs_voltages(beat8: np.ndarray, qrs_on: int, qrs_off: int) -> tuple[float, float, float, float]:
    """(Sokolow-Lyon, Cornell, R(aVL), S(V3)) in mV of an 8-lead beat's QRS (I, II, V1-V6; aVL derived):
    Sokolow-Lyon = S(V1) + max(R(V5), R(V6)) (Sokolow & Lyon 1949), Cornell = R(aVL) + S(V3) (Casale et al.
    1985), R and S measured from the QRS-onset level as the interpreter does."""
    q = derive_12(beat8)[:, qrs_on : qrs_off + 1]
    q = q - q[:, :1]
    r_avl, s_v3 = float(q[4].max()), float(-q[8].min())
    sokolow = float(-q[6].min()) + float(max(q[10].max(), q[11].max()))
    return sokolow, r_avl + s_v3, r_avl, s_v3


def _lvh_gains(e: Edit, c: PlanContext) -> None:
    """LVH voltage: precordial gain for a Sokolow-Lyon voltage of 3.8-5.0 mV (clearly above 3.5 mV), the limb
    leads raised by half as much (at most x1.6)."""
    sok = qrs_voltages(c.tpl.beat * e.amplitude, c.tpl.qrs_on, c.tpl.qrs_off)[0]
    e.lvh_gain = c.rng.uniform(3.8, 5.0) / max(sok, 0.5)
    e.lvh_limb_gain = min(1.6, 1.0 + 0.5 * max(0.0, e.lvh_gain - 1.0))


def _lvh(e: Edit, c: PlanContext) -> None:
    _lvh_gains(e, c)


def _lvh_strain(e: Edit, c: PlanContext) -> None:
    _lvh_gains(e, c)
    e.lvh_strain = True
    e.lvh_strain_mv = c.rng.uniform(0.25, 0.4)


def _st_depression(group: str) -> Callable[[Edit, PlanContext], None]:
    def plan(e: Edit, c: PlanContext) -> None:
        e.std_group = group
        e.std_mv = c.rng.uniform(0.1, 0.2)

    return plan


#: T-U: the heart rate is capped here (bpm) in records with U waves; faster, the U wave runs into the next P wave
#: (sinus) or the next QRS (the short cycles of fibrillation), where no reader separates it
T_FLAT_U_MAX_HR = 85.0
T_FLAT_U_MAX_HR_LONG_PR = 68.0  # with 1st degree AV block: the long PR puts the P wave on the U wave sooner
#: T-U: the range of the ST-T scale of the flattening
T_FLAT_RANGE = (0.03, 0.6)


def _t_flat_u(e: Edit, c: PlanContext) -> None:
    # the ST-T flattened so that in the leads of the criterion (I, II, V4-V6) it stays within 0.05-0.08 mV of the
    # PR level from J + 80 ms to T end (flat, yet still a wave of its own before the U wave), then a U wave of
    # 0.12-0.2 mV
    tpl = c.tpl
    beat = tpl.beat * e.amplitude
    dev = beat[:, tpl.qrs_off + int(0.08 * FS) : max(tpl.t_end, tpl.qrs_off + int(0.08 * FS) + 1)]
    dev = dev - pr_level(beat[:, : tpl.qrs_on])[:, None]
    t_max = float(np.abs(dev[[0, 1, 5, 6, 7]]).max())
    e.t_flat = float(np.clip(c.rng.uniform(0.05, 0.08) / max(t_max, 1e-3), *T_FLAT_RANGE))
    e.u_wave_mv = c.rng.uniform(0.12, 0.2)
    # a P wave 300 ms before its QRS sits on the U wave above ~70 /min
    e.hr = min(e.hr, T_FLAT_U_MAX_HR_LONG_PR if "av_block_1" in c.findings else T_FLAT_U_MAX_HR)


def _flutter(e: Edit, c: PlanContext) -> None:
    # typical flutter circuit 250-320 /min with fixed 2:1, 3:1 or 4:1 conduction; the ventricular rate follows
    e.rhythm = "flutter"
    e.flutter_rate = c.rng.uniform(250.0, 320.0)
    e.flutter_conduction = int(c.rng.choice([2, 3, 4], p=[0.4, 0.25, 0.35]))
    e.hr = e.flutter_rate / e.flutter_conduction


def _sinus_arrhythmia(e: Edit, c: PlanContext) -> None:
    # phasic RR range of 150-200 ms (clear of the 120 ms criterion); depth <= 0.14 keeps the RR variation of a
    # sinus arrhythmia well below the irregularity of atrial fibrillation
    rr = 60.0 / e.hr
    e.sinus_arrhythmia = float(np.clip(c.rng.uniform(0.15, 0.2) / (2 * rr), 0.06, 0.14))


def _template_pr(tpl: Template) -> float:
    """PR of the template (s): QRS onset minus the onset of the lead-II P wave (where its deviation from the TP
    baseline first reaches a fifth of its peak, the last 40 ms before the QRS left out)."""
    p = tpl.beat[1, : tpl.qrs_on]
    dev = np.abs(p - np.median(p[: int(0.03 * FS)]))
    k = int(np.argmax(dev[: max(1, len(p) - int(0.04 * FS))]))
    above = np.nonzero(dev[: k + 1] < 0.2 * dev[k])[0]
    return (tpl.qrs_on - (int(above[-1]) if len(above) else 0)) / FS


def _wenckebach(e: Edit, c: PlanContext) -> None:
    # the blocked P wave comes one P-P cycle after the last conducted one, i.e. P-P minus the longest PR after that
    # beat's R: it must clear the T wave. Longest PR = template PR + 175 ms (the synthesiser's largest growth);
    # R to T end from the template, or from a QTcF of 570 ms when the record also has a prolonged QT
    rt = (c.tpl.t_end - c.tpl.r) / FS * max(1.0, e.qt_mult)
    if "long_qt" in c.findings:
        rt = max(rt, 0.57 - (c.tpl.r - c.tpl.qrs_on) / FS)
    pp_min = _template_pr(c.tpl) + 0.175 + rt + 0.06
    e.hr = min(e.hr, 75.0, 60.0 / pp_min)
    if "sinus_rhythm" in c.findings or "sinus_arrhythmia" in c.findings:
        e.hr = max(e.hr, 62.0)  # the rate statement stays the intended one
    else:
        e.hr = max(e.hr, 48.0)  # 3:2 conduction of a slower sinus rhythm leaves a ventricular rate under 32 /min
    # 3:2 to 5:4 conduction, with groups short enough that a 10 s record holds at least two blocked P waves
    e.wenckebach = int(min(c.rng.integers(3, 6), max(3, int(4.0 * e.hr / 60))))


def _pac(e: Edit, c: PlanContext) -> None:
    e.n_pac = int(c.rng.integers(1, 3))
    # a premature beat conducted with a normal QRS must come after the previous T wave: at most 120 /min
    e.hr = min(e.hr, 120.0)


def _pre_excitation(e: Edit, c: PlanContext) -> None:
    qrs_ms = (c.tpl.qrs_off - c.tpl.qrs_on) * 1000 / FS
    # a 40-60 ms delta wave, long enough that the pre-excited QRS lasts >= 125 ms
    e.pre_excitation_s = max(c.rng.uniform(0.04, 0.06), (125.0 - qrs_ms) / 1000)
    # the P wave right before the delta wave must come after the previous T wave: at most 120 /min
    e.hr = min(e.hr, 120.0)


def _rate_only(e: Edit, c: PlanContext) -> None:
    """Sinus rhythm, bradycardia, tachycardia: the rate is the whole edit (set before the planners run)."""


#: finding id -> planner. A finding without a planner here cannot be drawn (see :func:`plan_edit`).
FINDING_PLANNERS: dict[str, Callable[[Edit, PlanContext], None]] = {
    "sinus_rhythm": _rate_only,
    "sinus_bradycardia": _rate_only,
    "sinus_tachycardia": _rate_only,
    "atrial_fibrillation": _af,
    "atrial_flutter": _flutter,
    "sinus_arrhythmia": _sinus_arrhythmia,
    "av_block_1": _av_block_1,
    "av_block_2_mobitz1": _wenckebach,
    "pre_excitation": _pre_excitation,
    "pac": _pac,
    "pvc": _pvc,
    "rbbb": _bbb("rbbb"),
    "lbbb": _bbb("lbbb"),
    "low_voltage": _low_voltage,
    "st_elevation_anterior": _ste("anterior"),
    "st_elevation_inferior": _ste("inferior"),
    "st_elevation_lateral": _ste("lateral"),
    "t_inversion_lateral": _twi("lateral"),
    "t_inversion_anterior": _twi("anterior"),
    "peaked_t": _peaked_t,
    "long_qt": _long_qt,
    "lafb": _lafb,
    "left_axis_deviation": _axis(-60.0, -40.0),
    "right_axis_deviation": _axis(110.0, 150.0),
    "q_waves_inferior": _q_waves("inferior"),
    "q_waves_anterior": _q_waves("anterior"),
    "lvh": _lvh,
    "lvh_strain": _lvh_strain,
    "st_depression_lateral": _st_depression("lateral"),
    "t_flat_u": _t_flat_u,
}


def plan_edit(
    findings: Iterable[str], tpl: Template, rng: np.random.Generator, age: float, sex: str, *, hr: float | None = None
) -> Edit:
    """The edit parameters of a record with these findings (exactly one rhythm among them).

    The rhythm's rate is drawn from :data:`RATE_RANGES` (``hr``, when given, replaces the drawn rate: the draw is
    still made, so the generator's later draws are the same; the planners' rate caps and atrial flutter's rate
    still apply); the amplitude follows age and sex (module docstring) and,
    unless the record has low voltage, keeps the limb-lead QRS clearly above the 0.5 mV low-voltage criterion; a
    template whose QTcF exceeds 440 ms is shortened unless the record has a prolonged QT; a template whose
    precordial voltage comes within :data:`LVH_CAP_MARGIN` of an LVH voltage limit is scaled down unless the record
    has LVH (or low voltage). Then each finding's planner runs, in report order.

    Raises:
        ValueError: not exactly one rhythm finding, or a finding without a planner (not implemented).
    """
    fids = tuple(findings)
    rhythms = [f for f in fids if finding(f).family == "rhythm"]
    if len(rhythms) != 1:
        raise ValueError(f"a record needs exactly one rhythm finding, got {rhythms} in {fids}")
    missing = [f for f in fids if f not in FINDING_PLANNERS]
    if missing:
        raise ValueError(f"no synthesiser edit for {missing}: implemented findings are {sorted(FINDING_PLANNERS)}")
    lo, hi = RATE_RANGES[rhythms[0]]
    drawn = rng.uniform(lo, hi)
    hr = drawn if hr is None else float(hr)
    amp = (1.15 - 0.005 * (age - 20)) * (0.9 if sex == "F" else 1.0)
    if "low_voltage" not in fids:
        # keep records that are not meant to be low-voltage clearly above the 0.5 mV limb-lead criterion
        limb = float(np.ptp(derive_12(tpl.beat)[:6, tpl.qrs_on : tpl.qrs_off + 1], axis=1).max())
        amp = max(amp, 0.7 / max(limb, 1e-3))
    e = Edit(hr=hr, amplitude=amp, qt_mult=1.03 if sex == "F" else 1.0)
    if "long_qt" not in fids:
        # a GAN template with a long QT would make a record read as prolonged QT: cap QTcF at 440 ms
        qt0, qrs = _qt_parts(tpl)
        if qt0 / np.cbrt(tpl.rr_s) > 0.44:
            e.qt_mult *= (0.44 * np.cbrt(tpl.rr_s) - qrs) / max(0.1, qt0 - qrs)
    if not set(fids) & set(AXIS_FINDINGS):
        lo = NORMAL_AXIS_INFERIOR_Q_DEG if "q_waves_inferior" in fids else NORMAL_AXIS_DEG[0]
        e.axis_range_deg = (lo, NORMAL_AXIS_DEG[1])
    if not {"low_voltage", "lvh", "lvh_strain"} & set(fids):
        # a GAN template whose QRS voltage (after the amplitude above) would nearly meet an LVH criterion would make
        # a record read as LVH: cap its precordial voltage at LVH_CAP_MARGIN below the Sokolow-Lyon and Cornell
        # limits (the limb leads, which carry the low-voltage margin, stay as they are)
        sok, _, r_avl, s_v3 = qrs_voltages(tpl.beat * amp, tpl.qrs_on, tpl.qrs_off)
        cornell_cap = CORNELL_LVH_MV["F" if sex == "F" else "M"] - LVH_CAP_MARGIN
        caps = [1.0, (SOKOLOW_LVH_MV - LVH_CAP_MARGIN) / max(sok, 1e-3)]
        if r_avl + s_v3 > cornell_cap:
            caps.append(max(0.0, cornell_cap - r_avl) / max(s_v3, 1e-3))
        e.lvh_gain = max(0.5, min(caps))
    ctx = PlanContext(tpl, rng, age, sex, frozenset(fids))
    for f in fids:
        FINDING_PLANNERS[f](e, ctx)
    return e


def plan_record(tpl: Template, rng: np.random.Generator, age: float, sex: str) -> tuple[tuple[str, ...], Edit]:
    """Draw a record's findings (:func:`.findings.draw_findings`, implemented findings only) and plan their edit.

    Returns the intended findings (report order) and the :class:`~.conditions.Edit`."""
    fids = draw_findings(rng)
    return fids, plan_edit(fids, tpl, rng, age, sex)
