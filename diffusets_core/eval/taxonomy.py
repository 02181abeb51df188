"""The benchmark's class taxonomy: which report statements make each evaluated class, and how the classes group.

A class is a set of substring patterns on the lower-cased report (:func:`.classifiers.labels_from_reports`):
a plain list means "any of these", a dict can add ``none`` (patterns that must be absent).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EVAL_CLASSES", "RATE_CLASSES", "MORPHOLOGY_CLASSES", "KEY_CLASSES"]

#: class -> substring patterns on the lower-cased report (see :func:`.classifiers.labels_from_reports`)
EVAL_CLASSES: dict[str, Any] = {
    "normal": {"any": ["normal ecg"], "none": ["abnormal ecg"]},
    "sinus_bradycardia": ["sinus bradycardia"],
    "sinus_tachycardia": ["sinus tachycardia"],
    "atrial_fibrillation": ["atrial fibrillation"],
    "av_block_1": ["1st degree a-v block"],
    "rbbb": ["right bundle branch block"],
    "lbbb": ["left bundle branch block"],
    "st_elevation": ["st elevation"],
    "t_inversion": ["t wave inversion"],
    "peaked_t": ["peaked t waves"],
    "long_qt": ["prolonged qt interval"],
    "pvc": ["ventricular premature complex"],
    "low_voltage": ["low qrs voltages"],
}

#: Classes that heart rate alone decides; every other class is a morphology (or rhythm-morphology) class.
RATE_CLASSES = ("normal", "sinus_bradycardia", "sinus_tachycardia")
#: Every class the heart rate alone does not decide.
MORPHOLOGY_CLASSES = tuple(c for c in EVAL_CLASSES if c not in RATE_CLASSES)
#: The classes with a per-class recall target of their own.
KEY_CLASSES = ("rbbb", "lbbb", "t_inversion", "atrial_fibrillation", "av_block_1", "st_elevation")
