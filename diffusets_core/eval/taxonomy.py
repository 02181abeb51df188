"""The benchmark's class taxonomy: which findings (and, for reports without structured labels, which statement
patterns) make each evaluated class, and how the classes group.

A class is a mapping with ``findings`` (finding ids of :mod:`diffusets_core.data.cohort.findings`), ``any``
(substring patterns on the lower-cased report) and optionally ``none`` (patterns that must be absent). Labels
come from the structured findings when a record has them (the embedded cohort), from the wording bank when every
statement of a report is one of its wordings, and from the patterns otherwise (real MIMIC-IV-ECG machine
statements); see :func:`.classifiers.labels_for_reports`.

Territory variants of one finding kind form one class (ST elevation in any territory, T inversion in lateral or
anterior leads, Q waves of an old inferior or anterior infarct), as real reports word the territory freely.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EVAL_CLASSES", "RATE_CLASSES", "MORPHOLOGY_CLASSES", "KEY_CLASSES", "classes_of_finding", "class_statement"]


def _c(findings: tuple[str, ...], *patterns: str, none: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"findings": findings, "any": list(patterns)}
    if none:
        out["none"] = list(none)
    return out


#: class -> {"findings": finding ids, "any": substring patterns, "none": patterns that must be absent}
EVAL_CLASSES: dict[str, Any] = {
    "normal": _c(("normal_ecg",), "normal ecg", none=("abnormal ecg",)),
    "sinus_bradycardia": _c(("sinus_bradycardia",), "sinus bradycardia"),
    "sinus_tachycardia": _c(("sinus_tachycardia",), "sinus tachycardia"),
    "sinus_arrhythmia": _c(("sinus_arrhythmia",), "sinus arrhythmia"),
    "atrial_fibrillation": _c(("atrial_fibrillation",), "atrial fibrillation"),
    "atrial_flutter": _c(("atrial_flutter",), "atrial flutter"),
    "av_block_1": _c(("av_block_1",), "1st degree a-v block"),
    "av_block_2": _c(("av_block_2_mobitz1",), "mobitz i", "wenckebach"),
    "pre_excitation": _c(("pre_excitation",), "pre-excitation", "preexcitation"),
    "pac": _c(("pac",), "atrial premature complex"),
    "pvc": _c(("pvc",), "ventricular premature complex"),
    "rbbb": _c(("rbbb",), "right bundle branch block"),
    "lbbb": _c(("lbbb",), "left bundle branch block"),
    "lafb": _c(("lafb",), "left anterior fascicular block"),
    "left_axis_deviation": _c(("left_axis_deviation",), "left axis deviation"),
    "right_axis_deviation": _c(("right_axis_deviation",), "right axis deviation"),
    "low_voltage": _c(("low_voltage",), "low qrs voltages"),
    "lvh": _c(("lvh",), "left ventricular hypertrophy", none=("repolarization abnormality",)),
    "lvh_strain": _c(("lvh_strain",), "left ventricular hypertrophy with repolarization abnormality"),
    "q_waves": _c(("q_waves_inferior", "q_waves_anterior"), "infarct, age undetermined"),
    "st_elevation": _c(("st_elevation_anterior", "st_elevation_inferior", "st_elevation_lateral"), "st elevation"),
    "st_depression": _c(("st_depression_lateral",), "st depression"),
    "t_inversion": _c(("t_inversion_lateral", "t_inversion_anterior"), "t wave inversion"),
    "peaked_t": _c(("peaked_t",), "peaked t waves"),
    "t_flat_u": _c(("t_flat_u",), "t wave flattening with u waves"),
    "long_qt": _c(("long_qt",), "prolonged qt interval"),
}

#: Classes that heart rate alone decides; every other class is a morphology (or rhythm-morphology) class.
RATE_CLASSES = ("normal", "sinus_bradycardia", "sinus_tachycardia")
#: Every class the heart rate alone does not decide.
MORPHOLOGY_CLASSES = tuple(c for c in EVAL_CLASSES if c not in RATE_CLASSES)
#: The classes with a per-class recall target of their own.
KEY_CLASSES = ("rbbb", "lbbb", "t_inversion", "atrial_fibrillation", "av_block_1", "st_elevation")


def class_statement(cls: str) -> str:
    """The canonical statement of a class's first finding (for labelling figures and tables); the class name when
    the class has no findings."""
    from ..data.cohort.findings import statement_of

    fids = EVAL_CLASSES.get(cls, {}).get("findings", ())
    return statement_of(fids[0]) if fids else cls


def classes_of_finding(fid: str) -> tuple[str, ...]:
    """The evaluated classes a finding id belongs to (empty for findings no class evaluates, e.g. sinus rhythm)."""
    return tuple(c for c, spec in EVAL_CLASSES.items() if fid in spec["findings"])
