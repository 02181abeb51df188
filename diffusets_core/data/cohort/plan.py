"""Who each cohort record is: its classes, heart rate, patient and the edit parameters.

Class mix (weights, before normalisation) keeps every class at several hundred records in a
4,000-record cohort: sinus rhythm with a normal ECG 22 %, every other class 5–8 %. A fifth of the
records with a non-rhythm abnormality get a tachycardic rate and a tenth a bradycardic one (e.g. sinus
tachycardia + ST elevation), so classes combine as they do in real reports.

Patients: age ~ Normal(58, 17) clipped to 18–95 years, 52 % men; one to two records per subject.
Documented effects on the signal: voltage falls with age (×(1.15 − 0.005·(age − 20))); women have 10 %
lower voltage and a 3 % longer QT.
"""

from __future__ import annotations

import numpy as np

from .conditions import Edit, derive_12
from .morphology import FS, Template

CLASS_WEIGHTS = {
    "normal": 0.22,
    "sinus_bradycardia": 0.07,
    "sinus_tachycardia": 0.07,
    "atrial_fibrillation": 0.07,
    "av_block_1": 0.065,
    "rbbb": 0.05,
    "lbbb": 0.05,
    "st_elevation": 0.08,
    "t_inversion": 0.065,
    "peaked_t": 0.06,
    "long_qt": 0.06,
    "pvc": 0.065,
    "low_voltage": 0.055,
}
RATE_FREE = ("st_elevation", "t_inversion", "peaked_t", "low_voltage", "rbbb", "lbbb", "pvc")


def subject_of(index: int) -> int:
    """Records 3k, 3k+1 share a subject, 3k+2 has its own: 1.5 records per subject on average."""
    return 10_000_000 + (index // 3) * 2 + (1 if index % 3 == 2 else 0)


def patient(seed: int, subject: int) -> tuple[float, str]:
    rng = np.random.default_rng([seed, subject, 7])
    age = float(np.clip(np.round(rng.normal(58, 17)), 18, 95))
    sex = "M" if rng.random() < 0.52 else "F"
    return age, sex


def choose_class(rng: np.random.Generator) -> str:
    names = list(CLASS_WEIGHTS)
    w = np.array([CLASS_WEIGHTS[n] for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _t_amp(tpl: Template, lead: int) -> float:
    seg = tpl.beat[lead, tpl.qrs_off + int(0.06 * FS) : tpl.t_end]
    return float(np.abs(seg).max()) if len(seg) else 0.3


def make_edit(cls: str, tpl: Template, rng: np.random.Generator, age: float, sex: str) -> tuple[list[str], Edit]:
    """The intended classes and the edit parameters for one record."""
    classes = [cls]
    hr = rng.uniform(62, 95)
    if cls == "sinus_bradycardia":
        hr = rng.uniform(42, 56)
    elif cls == "sinus_tachycardia":
        hr = rng.uniform(106, 150)
    elif cls == "atrial_fibrillation":
        hr = rng.uniform(70, 125)
    elif cls == "av_block_1":
        hr = rng.uniform(50, 78)
    elif cls in RATE_FREE:
        u = rng.random()
        if u < 0.2:
            hr = rng.uniform(106, 135)
            classes.append("sinus_tachycardia")
        elif u < 0.3:
            hr = rng.uniform(44, 56)
            classes.append("sinus_bradycardia")
    amp = (1.15 - 0.005 * (age - 20)) * (0.9 if sex == "F" else 1.0)
    if cls != "low_voltage":
        # keep records that are not meant to be low-voltage clearly above the 0.5 mV limb-lead criterion
        limb = float(np.ptp(derive_12(tpl.beat)[:6, tpl.qrs_on : tpl.qrs_off + 1], axis=1).max())
        amp = max(amp, 0.7 / max(limb, 1e-3))
    e = Edit(hr=hr, amplitude=amp, qt_mult=1.03 if sex == "F" else 1.0)
    qrs_ms = (tpl.qrs_off - tpl.qrs_on) * 1000 / FS
    if cls == "atrial_fibrillation":
        e.rhythm = "af"
    elif cls == "av_block_1":
        e.pr_extra_s = rng.uniform(0.10, 0.15)
    elif cls in ("rbbb", "lbbb"):
        e.bbb = cls
        e.qrs_stretch = rng.uniform(135, 165) / qrs_ms
    elif cls == "st_elevation":
        e.ste_group = str(rng.choice(["anterior", "inferior", "lateral"]))
        e.ste_mv = rng.uniform(0.35, 0.5) if e.ste_group == "anterior" else rng.uniform(0.2, 0.35)
    elif cls == "t_inversion":
        e.twi_group = str(rng.choice(["lateral", "anterior"]))
    elif cls == "peaked_t":
        # V3 T to 1.7-2.3 mV before filtering, at most 5x its normal height
        e.peaked_gain = min(5.0, rng.uniform(1.7, 2.3) / max(0.15, amp * _t_amp(tpl, 4)))
    elif cls == "long_qt":
        qt0 = (tpl.t_end - tpl.qrs_on) / FS
        qtcf_target = rng.uniform(0.51, 0.57)
        # the synthesiser scales ST-T by (RR/RR_template)^(1/3), so QTcF ~ (qrs + stt * m) / RR_template^(1/3)
        qrs = (tpl.qrs_off - tpl.qrs_on) / FS
        e.qt_mult *= (qtcf_target * np.cbrt(tpl.rr_s) - qrs) / max(0.1, qt0 - qrs)
    if cls != "long_qt":
        # a GAN template with a long QT would make a "normal" record read as prolonged QT: cap QTcF at 440 ms
        qt0 = (tpl.t_end - tpl.qrs_on) / FS
        qrs = (tpl.qrs_off - tpl.qrs_on) / FS
        cap = (0.44 * np.cbrt(tpl.rr_s) - qrs) / max(0.1, qt0 - qrs)
        if qt0 / np.cbrt(tpl.rr_s) > 0.44:
            e.qt_mult *= cap
    if cls == "pvc":
        e.n_pvc = int(rng.integers(1, 3))
    elif cls == "low_voltage":
        limb = derive_12(tpl.beat)[:6, tpl.qrs_on : tpl.qrs_off + 1]
        e.low_voltage = rng.uniform(0.25, 0.4) / max(1e-3, amp * float(np.ptp(limb, axis=1).max()))
    return classes, e
